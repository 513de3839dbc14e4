#!/usr/bin/env python3
"""libmodmta's exported ABI: the list sdk/abi/exported.txt, one line
"function@MODMTA_<major>.<minor>" per public function, naming the ABI
version that added it.

  abi.py versionscript LIST OUT
      write the linker version script for LIST: one node per ABI minor
      up to module.h's (one without functions too), each inheriting the
      one before; everything else local. The build does this.
  abi.py update [--cc CC]
      add to the list every function the installed headers
      (sdk/modmta/*.h) declare that it lacks, under the headers' current
      ABI minor (MODMTA_ABI_MINOR in module.h). Run it after adding a
      public function; a function gone from the headers is an error (only
      a major version may remove one). Then commit the list.
  abi.py check [--cc CC] [--frozen DIR]... ELF...
      compare, and only compare: the headers' functions with the list,
      each ELF file's exported symbols (modmta, libmodmta.so) with the
      list, versions included, and each frozen copy of older headers
      (DIR/modmta/*.h, sdk/tests/abi10) with the list: every function
      they declare is still exported, in a version no newer than theirs.
      The abi-exports test runs this.

Functions are read from the headers with the compiler's -aux-info (gcc).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
LIST = os.path.join(HERE, "exported.txt")
HEADERS = os.path.join(SDK, "modmta")
NODE_RE = re.compile(r"^MODMTA_(\d+)\.(\d+)$")


def fail(msg):
    sys.exit("abi.py: " + msg)


def abi_version(headers=HEADERS):
    """(major, minor) as module.h defines them."""
    with open(os.path.join(headers, "module.h")) as f:
        text = f.read()
    v = [re.search(r"#define MODMTA_ABI_%s (\d+)" % k, text)
         for k in ("MAJOR", "MINOR")]
    if None in v:
        fail("no MODMTA_ABI_MAJOR/MINOR in module.h")
    return int(v[0].group(1)), int(v[1].group(1))


def node_key(node):
    m = NODE_RE.match(node)
    if m is None:
        fail("bad version node %r (expected MODMTA_<major>.<minor>)" % node)
    return int(m.group(1)), int(m.group(2))


def read_list(path):
    """{function: node} from the list; '#' starts a comment."""
    syms = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, node = line.partition("@")
            if not sep or not name:
                fail("%s:%d: expected function@NODE" % (path, n))
            node_key(node)
            if name in syms:
                fail("%s:%d: %s listed twice" % (path, n, name))
            syms[name] = node
    return syms


def write_list(path, syms):
    order = sorted(syms, key=lambda s: (node_key(syms[s]), s))
    with open(path, "w") as f:
        f.write("# libmodmta's ABI: every public function and the version\n"
                "# that added it. Append-only; see sdk/abi/abi.py.\n")
        for s in order:
            f.write("%s@%s\n" % (s, syms[s]))


def header_functions(cc, root=SDK):
    """Names of the functions root/modmta/*.h declare."""
    cflags = []
    try:
        cflags = subprocess.run(["pkg-config", "--cflags", "jansson"],
                                capture_output=True, text=True,
                                check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pass    # jansson.h in the default include path
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "all.c")
        aux = os.path.join(tmp, "aux.txt")
        with open(src, "w") as f:
            f.write("#include <modmta/modmta.h>\n")
        cmd = shlex.split(cc) + ["-D_GNU_SOURCE", "-I", root] + cflags + [
            "-c", "-o", os.devnull, "-aux-info", aux, src]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(aux):
            fail("%s failed:\n%s" % (" ".join(cmd), r.stderr))
        with open(aux) as f:
            lines = f.readlines()
    names = set()
    prefix = "/* " + os.path.join(root, "modmta") + "/"
    for line in lines:
        if not line.startswith(prefix):
            continue
        decl = line.split("*/", 1)[1].strip()
        if decl.startswith("static"):
            continue    # an inline helper: nothing to export
        m = re.search(r"([A-Za-z_]\w*) \(", decl)
        if m is None:
            fail("cannot read a declaration: " + line.strip())
        names.add(m.group(1))
    return names


def readelf(*args):
    return subprocess.run(["readelf", "--wide"] + list(args),
                          capture_output=True, text=True,
                          check=True).stdout


def copy_relocated(elf):
    """Variables of other libraries (libc's stdout) an executable holds
    through copy relocations: defined in it, exported by them."""
    names = set()
    for line in readelf("--relocs", elf).splitlines():
        f = line.split()
        if len(f) >= 5 and f[2].endswith("_COPY"):
            names.add(f[4].split("@")[0])
    return names


def exported(elf):
    """{symbol: node} of the functions and data elf exports."""
    out = readelf("--dyn-syms", elf)
    copies = copy_relocated(elf)
    syms = {}
    for line in out.splitlines():
        f = line.split()
        # Num: Value Size Type Bind Vis Ndx Name [(version index)]
        if len(f) < 8 or not f[0][:-1].isdigit() or f[6] == "UND" or \
                f[4] == "LOCAL":
            continue
        name, default, node = f[7].partition("@@")
        if not default:
            name, _, node = f[7].partition("@")
        if f[6] == "ABS" and f[3] == "OBJECT" and NODE_RE.match(name):
            continue    # the version nodes themselves
        if name in copies:
            continue
        syms[name] = node
    return syms


def versionscript(args):
    syms = read_list(args.list)
    major, minor = abi_version()
    # every minor has its node, one without new functions too
    nodes = ["MODMTA_%d.%d" % (major, m) for m in range(minor + 1)]
    for node in set(syms.values()) - set(nodes):
        fail("%s: not a version of ABI %d.0 to %d.%d"
             % (node, major, major, minor))
    with open(args.out, "w") as f:
        f.write("/* Generated by sdk/abi/abi.py from %s */\n"
                % os.path.basename(args.list))
        prev = None
        for node in nodes:
            funcs = sorted(k for k in syms if syms[k] == node)
            f.write("%s {\n" % node)
            if funcs:
                f.write("  global:\n")
            for s in funcs:
                f.write("    %s;\n" % s)
            if prev is None:
                f.write("  local:\n    *;\n")
            f.write("}%s;\n" % (" " + prev if prev else ""))
            prev = node


def update(args):
    major, minor = abi_version()
    syms = read_list(LIST)
    have = header_functions(args.cc)
    gone = sorted(set(syms) - have)
    if gone:
        fail("no longer declared in sdk/modmta/*.h: %s (removing a public "
             "function breaks ABI %d)" % (", ".join(gone), major))
    node = "MODMTA_%d.%d" % (major, minor)
    added = sorted(have - set(syms))
    for s in added:
        syms[s] = node
    write_list(LIST, syms)
    for s in added:
        print("added %s@%s" % (s, node))
    print("%s: %d functions" % (os.path.relpath(LIST), len(syms)))


def check(args):
    major, minor = abi_version()
    syms = read_list(LIST)
    errors = []
    for s, node in sorted(syms.items()):
        if node_key(node)[0] != major or node_key(node)[1] > minor:
            errors.append("%s@%s: not a version of ABI %d.0 to %d.%d"
                          % (s, node, major, major, minor))
    have = header_functions(args.cc)
    for s in sorted(have - set(syms)):
        errors.append("%s: declared in sdk/modmta/*.h but not in "
                      "sdk/abi/exported.txt (run sdk/abi/abi.py update)" % s)
    for s in sorted(set(syms) - have):
        errors.append("%s: in sdk/abi/exported.txt but declared in no "
                      "installed header" % s)
    for root in args.frozen:
        root = os.path.abspath(root)
        fmajor, fminor = abi_version(os.path.join(root, "modmta"))
        for s in sorted(header_functions(args.cc, root)):
            if s not in syms:
                errors.append("%s: declared by the ABI %d.%d headers (%s) "
                              "but no longer exported"
                              % (s, fmajor, fminor, root))
            elif node_key(syms[s]) > (fmajor, fminor):
                errors.append("%s@%s: declared by the ABI %d.%d headers "
                              "(%s)" % (s, syms[s], fmajor, fminor, root))
    for elf in args.elf:
        got = exported(elf)
        name = os.path.basename(elf)
        for s in sorted(set(got) - set(syms)):
            errors.append("%s exports %s%s, which is not in the ABI"
                          % (name, s, "@" + got[s] if got[s] else ""))
        for s in sorted(set(syms) - set(got)):
            errors.append("%s does not export %s" % (name, s))
        for s in sorted(set(syms) & set(got)):
            if got[s] != syms[s]:
                errors.append("%s exports %s@%s, the list says @%s"
                              % (name, s, got[s] or "(no version)", syms[s]))
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        fail("%d difference(s)" % len(errors))
    print("ok: %d functions, ABI %d.%d, in %s" % (len(syms), major, minor,
                                                ", ".join(args.elf)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("versionscript")
    v.add_argument("list")
    v.add_argument("out")
    v.set_defaults(func=versionscript)
    u = sub.add_parser("update")
    u.add_argument("--cc", default=os.environ.get("CC", "cc"))
    u.set_defaults(func=update)
    c = sub.add_parser("check")
    c.add_argument("--cc", default=os.environ.get("CC", "cc"))
    c.add_argument("--frozen", action="append", default=[])
    c.add_argument("elf", nargs="+")
    c.set_defaults(func=check)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
