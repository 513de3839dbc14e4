"""The manual pages (man/): installed where man(1) finds them, clean under
mandoc's and groff's linters, and in step with the code, so that they
cannot drift silently:

- every option modmta accepts (its usage text and its getopt_long table in
  core/main.c) is in modmta(8), and every option modmta(8) lists is
  accepted;
- every command and option of modmtactl --help (and its control-command
  table) is in modmtactl(8), and every command modmtactl(8) lists exists;
- every key core/config.c accepts is in modmta.json(5) in its section,
  and nothing else is; each numeric default of limits and queue is the
  one the page states; every enumerated value is named; the embedded
  default the page shows is the one modmta prints.

Environment (set by tests/install/meson.build): BUILD_ROOT, SOURCE_ROOT,
MODMTA, MODMTACTL.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ.get('BUILD_ROOT', '')
SOURCE = os.environ.get('SOURCE_ROOT', '')
MODMTA = os.environ.get('MODMTA', '')
MODMTACTL = os.environ.get('MODMTACTL', '')

PAGES = ('modmta.8', 'modmtactl.8', 'modmta.json.5')
TOOLS = {'mandoc': 'mandoc', 'groff': 'groff-base', 'man': 'man-db'}


def installed_pages():
    """{page name: (file in the build or source tree, install path)} of
    every page meson installs."""
    with open(os.path.join(BUILD, 'meson-info', 'intro-installed.json')) as f:
        installed = json.load(f)
    pages = {}
    for src, dst in installed.items():
        if re.search(r'/share/man/man[1-9]/[^/]+$', dst):
            pages[os.path.basename(dst)] = (src, dst)
    return pages


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def page_text(name):
    return read(installed_pages()[name][0])


def sections(text):
    """{heading: [lines]} for every .Sh and .Ss of an mdoc page."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r'\.S[hs] (.+)$', line)
        if m:
            cur = m.group(1).strip('"')
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return out


def list_items(lines):
    """{first word after '.It Cm': the item's lines} of the outermost
    list in lines."""
    items, cur, depth = {}, None, 0
    for line in lines:
        if line.startswith('.Bl'):
            depth += 1
            continue
        if line.startswith('.El'):
            depth -= 1
            continue
        m = re.match(r'\.It Cm (\S+)', line)
        if depth == 1 and m:
            cur = m.group(1)
            items.setdefault(cur, [])
        if cur is not None:
            items[cur].append(line)
    return items


def c_string_array(source, name):
    """The strings of `static const char *const NAME[] = {...}`."""
    m = re.search(r'\b%s\[\]\s*=\s*\{(.*?)\};' % re.escape(name), source,
                  re.S)
    if m is None:
        raise AssertionError('%s not found' % name)
    return re.findall(r'"([^"]*)"', m.group(1))


def documented_options(text):
    """{'-c', '--config', ...}: the options of the page's option list
    (its .It Fl lines in DESCRIPTION)."""
    opts = set()
    for line in sections(text)['DESCRIPTION']:
        if line.startswith('.It Fl '):
            for flag in re.findall(r'Fl (\S+)', line):
                opts.add('-' + flag)
    return opts


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          **kw)


class Installed(unittest.TestCase):

    def test_pages_installed(self):
        pages = installed_pages()
        for name in PAGES:
            self.assertIn(name, pages, '%s is not installed' % name)
            section = name.rsplit('.', 1)[1]
            self.assertTrue(pages[name][1].endswith(
                '/share/man/man%s/%s' % (section, name)), pages[name][1])

    def test_man_finds_each_page_by_name(self):
        """man(1) on a tree laid out as installed: `man 5 modmta.json`."""
        tmp = tempfile.mkdtemp(prefix='modmta-man-')
        try:
            for name, (src, dst) in installed_pages().items():
                d = os.path.join(tmp, os.path.basename(os.path.dirname(dst)))
                os.makedirs(d, exist_ok=True)
                shutil.copy(src, os.path.join(d, name))
            for name in PAGES:
                title, section = name.rsplit('.', 1)
                r = run(['man', '--warnings', '-M', tmp, section, title],
                        env=dict(os.environ, MANPAGER='cat', PAGER='cat',
                                 MANWIDTH='80', LC_ALL='C.UTF-8'))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, '', name)
                self.assertIn(title.upper(), r.stdout)
        finally:
            shutil.rmtree(tmp)


class Lint(unittest.TestCase):

    def test_mandoc_lint(self):
        for name, (src, _) in installed_pages().items():
            r = run(['mandoc', '-T', 'lint', '-W', 'warning', src])
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ''),
                             name)

    def test_groff_warnings(self):
        for name, (src, _) in installed_pages().items():
            r = run(['groff', '-mandoc', '-ww', '-z', src])
            self.assertEqual((r.returncode, r.stderr), (0, ''), name)

    def test_no_placeholder_left(self):
        for name, (src, _) in installed_pages().items():
            self.assertIsNone(re.search(r'@[A-Z_]+@', read(src)), name)


class ModmtaOptions(unittest.TestCase):
    """modmta(8) against core/main.c and modmta --help."""

    def accepted(self):
        """{'-c', '--config', ...}: every option modmta accepts."""
        main = read(os.path.join(SOURCE, 'core', 'main.c'))
        m = re.search(r'getopt_long\([^,]+,[^,]+,\s*"([^"]*)"', main)
        self.assertIsNotNone(m, 'getopt_long call not found in main.c')
        opts = {'-' + c for c in m.group(1).replace(':', '')}
        longs = re.findall(r'\{"([a-z][a-z-]*)",\s*\w+_argument,', main)
        self.assertTrue(longs, 'no long options found in main.c')
        opts |= {'--' + name for name in longs}
        usage = run([MODMTA, '--help'])
        self.assertEqual(usage.returncode, 0, usage.stderr)
        from_usage = set(re.findall(r'(?<![\w-])(--?[A-Za-z][\w-]*)',
                                    usage.stdout))
        self.assertTrue(from_usage)
        self.assertLessEqual(from_usage, opts,
                             'modmta --help names options getopt does not '
                             'take')
        return opts

    def test_every_option_documented(self):
        self.assertEqual(documented_options(page_text('modmta.8')),
                         self.accepted())

    def test_signals(self):
        main = read(os.path.join(SOURCE, 'core', 'main.c'))
        caught = set(re.findall(r'sigaddset\(&set, (SIG[A-Z]+)\)', main))
        self.assertTrue(caught)
        text = '\n'.join(sections(page_text('modmta.8'))['SIGNALS'])
        for sig in caught | {'SIGPIPE'}:
            self.assertIn('Dv %s' % sig, text)


class ModmtactlCommands(unittest.TestCase):
    """modmtactl(8) against modmtactl --help and its command table."""

    def usage(self):
        r = run([MODMTACTL, '--help'])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def usage_commands(self):
        """[(command, subcommand or None, [flags])] of the Commands part."""
        out, in_commands = [], False
        for line in self.usage().splitlines():
            if line == 'Commands:':
                in_commands = True
                continue
            if in_commands and not line.startswith(' '):
                if line:
                    break
                continue
            if not in_commands or not re.match(r'  [a-z]', line):
                continue
            for part in re.split(r'\s{2,}', line.strip())[0].split(' | '):
                words = part.split()
                sub = words[1] if len(words) > 1 and \
                    re.fullmatch(r'[a-z]+', words[1]) else None
                flags = [w.strip('[]') for w in words if
                         w.strip('[').startswith('-')]
                out.append((words[0], sub, flags))
        self.assertGreater(len(out), 10, 'cannot read modmtactl --help')
        return out

    def page_commands(self):
        lines = sections(page_text('modmtactl.8'))['COMMANDS']
        return {' '.join(l.split()[1:]): l for l in lines
                if l.startswith('.It Cm ')}

    def test_every_command_documented(self):
        page = self.page_commands()
        items = list(page.values())
        for cmd, sub, flags in self.usage_commands():
            head = 'Cm %s' % cmd + (' %s' % sub if sub else '')
            found = [l for l in items if re.match(r'\.It %s\b' %
                                                  re.escape(head), l)]
            if flags:
                found = [l for l in found
                         if all('Fl %s' % f[1:] in l for f in flags)]
            self.assertTrue(found, '%s %s %s is not in modmtactl(8)'
                            % (cmd, sub or '', ' '.join(flags)))

    def test_control_table_documented(self):
        src = read(os.path.join(SOURCE, 'tools', 'modmtactl.c'))
        m = re.search(r'ctl_cmds\[\]\s*=\s*\{(.*?)\};', src, re.S)
        self.assertIsNotNone(m)
        names = re.findall(r'\{"(\w+)",\s*[01]\}', m.group(1))
        self.assertTrue(names)
        documented = {l.split()[2] for l in self.page_commands().values()}
        self.assertLessEqual(set(names), documented)

    def test_no_command_invented(self):
        known = {(c, s) for c, s, _ in self.usage_commands()}
        for line in self.page_commands().values():
            words = line.split()[2:]
            sub = words[1] if len(words) > 1 and \
                re.fullmatch(r'[a-z]+', words[1]) else None
            self.assertIn((words[0], sub), known, line)

    def test_every_option_documented(self):
        options = set(re.findall(r'^  (-\w)\b', self.usage(), re.M))
        options |= set(re.findall(r', (--\w+)', self.usage()))
        self.assertGreaterEqual(options, {'-c', '-s', '-h', '--help'})
        self.assertEqual(documented_options(page_text('modmtactl.8')),
                         options)


class ConfigKeys(unittest.TestCase):
    """modmta.json(5) against core/config.c and core/chain.c."""

    # page section -> config.c array of its keys
    SECTIONS = {
        'TOP-LEVEL KEYS': 'config_top_keys',
        'log': 'config_log_keys',
        'smtp': 'config_smtp_keys',
        'dns': 'config_dns_keys',
        'tls': 'config_tls_keys',
        'redis': 'config_redis_keys',
        'listen': 'config_listen_keys',
    }
    NUMS = {'limits': 'config_limits_nums', 'queue': 'config_queue_nums'}
    ENUMS = {
        ('log', 'level'): 'config_log_levels',
        ('log', 'facility'): 'config_facilities',
        ('tls', 'min_version'): 'config_tls_versions',
        ('listen', 'tls'): 'config_tls_modes',
        ('listen', 'auth'): 'config_auth_modes',
    }

    @classmethod
    def setUpClass(cls):
        cls.config_c = read(os.path.join(SOURCE, 'core', 'config.c'))
        cls.page = sections(page_text('modmta.json.5'))

    def nums(self, array):
        """{key: default} of a CONFIG_NUM / CONFIG_TIME / CONFIG_SIZE
        table."""
        m = re.search(r'\b%s\[\]\s*=\s*\{(.*?)\};' % array, self.config_c,
                      re.S)
        self.assertIsNotNone(m, array)
        out = {}
        for kind, args in re.findall(r'CONFIG_(NUM|TIME|SIZE)\(([^)]*)\)',
                                     m.group(1)):
            a = [x.strip() for x in args.split(',')]
            out[a[1]] = int(a[3] if kind == 'NUM' else a[2])
        self.assertTrue(out, array)
        return out

    def test_sections_list_exactly_the_keys(self):
        for section, array in self.SECTIONS.items():
            keys = set(c_string_array(self.config_c, array))
            self.assertEqual(set(list_items(self.page[section])), keys,
                             'section %s of modmta.json(5)' % section)
        for section, array in self.NUMS.items():
            self.assertEqual(set(list_items(self.page[section])),
                             set(self.nums(array)),
                             'section %s of modmta.json(5)' % section)

    def test_numeric_defaults(self):
        for section, array in self.NUMS.items():
            items = list_items(self.page[section])
            for key, default in self.nums(array).items():
                text = ' '.join(items[key])
                self.assertRegex(text, r'Default: %d\b' % default,
                                 '%s.%s' % (section, key))

    def test_sni_keys(self):
        sni = ' '.join(list_items(self.page['tls'])['sni'])
        for key in c_string_array(self.config_c, 'config_sni_keys'):
            self.assertIn('Cm %s' % key, sni)

    def test_module_entry_keys(self):
        conf = read(os.path.join(SOURCE, 'sdk', 'src', 'conf.c'))
        common = set(c_string_array(conf, 'conf_core_keys'))
        self.assertIn('module', common)
        self.assertEqual(set(list_items(self.page['modules'])), common)

    def test_enumerations(self):
        for (section, key), array in self.ENUMS.items():
            text = ' '.join(list_items(self.page[section])[key])
            for value in c_string_array(self.config_c, array):
                if re.fullmatch(r'local[1-6]', value):
                    value = 'local0'    # "local0 to local7"
                self.assertIn('Cm %s' % value, text,
                              '%s.%s: %s' % (section, key, value))

    def test_shipped_modules_named(self):
        with open(os.path.join(SOURCE, 'modules', 'meson.build')) as f:
            shipped = re.findall(r"^subdir\('(\w+)'\)", f.read(), re.M)
        self.assertTrue(shipped)
        text = '\n'.join(self.page['modules'])
        for name in shipped:
            self.assertIn('Cm %s' % name, text)

    def test_default_example_is_the_default(self):
        lines = self.page['EXAMPLES']
        start = lines.index('.Bd -literal -offset indent') + 1
        shown = json.loads('\n'.join(lines[start:lines.index('.Ed')]))
        r = run([MODMTA, '--print-default-config'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(shown, json.loads(r.stdout))


if __name__ == '__main__':
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        sys.exit('test_man: missing %s (packages %s; scripts/dev.sh '
                 'installs them)' % (', '.join(missing),
                                     ', '.join(TOOLS[t] for t in missing)))
    if not (BUILD and SOURCE and MODMTA and MODMTACTL):
        sys.exit('test_man: set BUILD_ROOT, SOURCE_ROOT, MODMTA, MODMTACTL '
                 '(meson test does)')
    unittest.main(verbosity=2)
