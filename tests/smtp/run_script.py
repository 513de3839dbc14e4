#!/usr/bin/env python3
"""Run one scripted SMTP dialogue against a modmta of its own.

usage: run_script.py SCRIPT

The format is described in tests/smtp/README.md. One daemon is started
(tests/e2e/harness.py: temp dir, free loopback ports, loopback-only DNS)
with the script's config; the steps run in order. On the first mismatch
the script's file:line, what was expected, what came and the daemon's log
tail are printed, the temp dir is kept and the exit status is 1.
"""

import ast
import fnmatch
import json
import os
import re
import shutil
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'e2e'))
import harness  # noqa: E402

REPLY_RE = re.compile(r'^(\d{3})(?:([ -])(.*))?$')
PLACEHOLDERS = ('$MAILDIR', '$SPOOL', '$DIR', '$MODULE_DIR',
                '$TEST_MODULE_DIR')


class Mismatch(Exception):
    """A step that did not go as the script says: (line, expected, got)."""


class ScriptError(Exception):
    """A script that cannot be read: (line, message)."""


# ---------------------------------------------------------------- parsing

def literal(text, lineno):
    """A python string or bytes literal (escapes allowed), as bytes.
    Literals may be joined with + and repeated with * N."""
    try:
        v = constant(ast.parse(text.strip(), mode='eval').body)
    except (ValueError, SyntaxError, TypeError) as e:
        raise ScriptError(lineno, 'not a string literal: %s (%s)'
                          % (text.strip(), e))
    if isinstance(v, str):
        return v.encode('utf-8')
    if isinstance(v, bytes):
        return v
    raise ScriptError(lineno, 'not a string literal: %s' % text.strip())


def constant(node):
    """The value of a constant, or of + and * between constants."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add,
                                                            ast.Mult)):
        left, right = constant(node.left), constant(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(right, int) and right <= 1 << 20:
            return left * right
    raise ValueError('only literals, + and * N')


def parse_config(first, lines, i, lineno):
    """The JSON object after "config": it ends on the first line where
    the text gathered so far parses. Returns (object, next index)."""
    text = first
    while True:
        try:
            obj = json.loads(text)
            break
        except ValueError:
            if i >= len(lines):
                raise ScriptError(lineno, 'config: JSON does not end')
            text += '\n' + lines[i]
            i += 1
    if not isinstance(obj, dict):
        raise ScriptError(lineno, 'config: not a JSON object')
    return obj, i


def parse_step(line, lineno):
    """(lineno, verb, argument) of one step line."""
    if line.startswith('>>>raw'):
        return (lineno, 'raw', literal(line[6:], lineno))
    if line == '>>>' or line.startswith('>>> '):
        return (lineno, 'send', line[4:].encode('utf-8') + b'\r\n')
    if line.startswith('<<< '):
        want = line[4:].strip()
        if want == 'closed':
            return (lineno, 'closed', None)
        m = REPLY_RE.match(want)
        if m is None:
            raise ScriptError(lineno, 'expected "<<< CODE[ -]GLOB" or '
                              '"<<< closed"')
        return (lineno, 'reply', (m.group(1), m.group(2) or ' ',
                                  m.group(3) or '*'))
    words = line.split(None, 2)
    verb = words[0]
    if verb == 'connect':
        return (lineno, 'connect', parse_connect(words[1:], lineno))
    if verb in ('close', 'queue-empty') and len(words) == 1:
        return (lineno, verb, None)
    if verb == 'no-mail' and len(words) == 2:
        return (lineno, verb, words[1])
    if verb == 'wait-mail' and len(words) == 3 and words[2].isdigit():
        return (lineno, verb, (words[1], int(words[2])))
    if verb == 'expect-mail' and len(words) == 3:
        return (lineno, verb, (words[1], literal(words[2], lineno)))
    raise ScriptError(lineno, 'unknown or malformed step: %s' % line)


def parse_connect(words, lineno):
    if not words:
        return None
    if len(words) == 2 and words[0] == 'from':
        return words[1]
    raise ScriptError(lineno, 'expected "connect [from ADDRESS]"')


def parse(path):
    """(config overrides, steps) of a script file."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    config, steps, i = {}, [], 0
    while i < len(lines):
        lineno, line = i + 1, lines[i].rstrip('\r')
        i += 1
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        if line.split(None, 1)[0] == 'config':
            if steps:
                raise ScriptError(lineno, 'config after the first step')
            obj, i = parse_config(line[len('config'):], lines, i, lineno)
            config = harness.deep_merge(config, obj)
            continue
        steps.append(parse_step(line, lineno))
    if not steps or steps[0][1] != 'connect':
        raise ScriptError(1, 'the first step must be "connect"')
    return config, steps


def substitute(value, daemon):
    """$MAILDIR, $SPOOL, $DIR, $MODULE_DIR and $TEST_MODULE_DIR (the test
    modules of core/tests/modules, such as "script") in the config's
    strings."""
    if isinstance(value, dict):
        return {k: substitute(v, daemon) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, daemon) for v in value]
    if isinstance(value, str):
        for name, path in zip(PLACEHOLDERS, (
                daemon.maildir, daemon.spool, daemon.dir, harness.MODULE_DIR,
                os.environ.get('TEST_MODULE_DIR', ''))):
            value = value.replace(name, path)
    return value


# ---------------------------------------------------------------- client

class Client:
    """One SMTP connection: sends are gathered and written at once before
    the next read, replies are read line by line."""

    def __init__(self, port, source, transcript):
        src = (source, 0) if source else None
        self.sock = socket.create_connection(('127.0.0.1', port),
                                             timeout=harness.IO_TIMEOUT,
                                             source_address=src)
        self.buf = b''
        self.out = b''
        self.log = transcript

    def queue(self, data):
        self.out += data

    def flush(self, lineno):
        if not self.out:
            return
        for line in self.out.splitlines(keepends=True):
            self.log.append('C: %r' % line)
        data, self.out = self.out, b''
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Mismatch(lineno, 'to send %d octets' % len(data),
                           'send failed: %s' % e)

    def line(self, lineno):
        """The next line from the server, or None at EOF."""
        self.flush(lineno)
        while b'\n' not in self.buf:
            try:
                b = self.sock.recv(65536)
            except ConnectionResetError:
                b = b''
            except socket.timeout:
                raise Mismatch(lineno, 'a reply or a close', 'nothing in %ss'
                               % harness.IO_TIMEOUT)
            if not b:
                if self.buf:
                    self.log.append('S: %r (no line end)' % self.buf)
                    return self.buf.decode('utf-8', 'replace')
                self.log.append('S: <closed>')
                return None
            self.buf += b
        line, _, self.buf = self.buf.partition(b'\n')
        self.log.append('S: %r' % (line + b'\n'))
        return line.rstrip(b'\r').decode('utf-8', 'replace')

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def expect_reply(client, lineno, want):
    """One "<<<" step. A continuation ("250-GLOB") matches the next reply
    line; a last line ("250 GLOB") skips the reply's remaining
    continuations (same code) and matches its last line."""
    code, sep, glob = want
    shown = '%s%s%s' % (code, sep, glob)
    while True:
        line = client.line(lineno)
        if line is None:
            raise Mismatch(lineno, shown, 'connection closed')
        m = REPLY_RE.match(line)
        if m is None:
            raise Mismatch(lineno, shown, 'malformed reply %r' % line)
        got_sep, text = m.group(2) or ' ', m.group(3) or ''
        if m.group(1) != code:
            raise Mismatch(lineno, shown, line)
        if got_sep == '-' and sep == ' ':
            continue
        if got_sep != sep or not fnmatch.fnmatchcase(text, glob):
            raise Mismatch(lineno, shown, line)
        return


# ---------------------------------------------------------------- steps

class Runner:

    def __init__(self, path, daemon):
        self.path = path
        self.d = daemon
        self.client = None
        self.transcript = []

    def run(self, steps):
        for lineno, verb, arg in steps:
            getattr(self, 'do_' + verb.replace('-', '_'))(lineno, arg)
        self.do_close(None, None)

    def need_client(self, lineno):
        if self.client is None:
            raise Mismatch(lineno, 'an open connection', 'none (closed)')
        return self.client

    def do_connect(self, lineno, source):
        self.do_close(lineno, None)
        self.transcript.append('-- %s:%d: connect%s'
                               % (self.path, lineno,
                                  ' from ' + source if source else ''))
        try:
            self.client = Client(self.d.port(), source, self.transcript)
        except OSError as e:
            raise Mismatch(lineno, 'a connection', str(e))

    def do_close(self, lineno, _):
        if self.client is not None:
            self.client.flush(lineno)
            self.client.close()
            self.client = None

    def do_send(self, lineno, data):
        self.need_client(lineno).queue(data)

    do_raw = do_send

    def do_reply(self, lineno, want):
        expect_reply(self.need_client(lineno), lineno, want)

    def do_closed(self, lineno, _):
        line = self.need_client(lineno).line(lineno)
        if line is not None:
            raise Mismatch(lineno, 'the server to close', line)
        self.do_close(lineno, None)

    def wait(self, lineno, what, fn, *args):
        try:
            return fn(*args)
        except AssertionError as e:
            raise Mismatch(lineno, what, str(e))

    def do_wait_mail(self, lineno, arg):
        user, n = arg
        msgs = self.wait(lineno, '%d message(s) for %s' % (n, user),
                         self.d.wait_messages, user, n)
        if len(msgs) != n:
            raise Mismatch(lineno, '%d message(s) for %s' % (n, user),
                           '%d message(s)' % len(msgs))

    def do_expect_mail(self, lineno, arg):
        user, text = arg
        msgs = self.d.messages(user)
        if not any(text in m for m in msgs):
            raise Mismatch(lineno, '%r in a message for %s' % (text, user),
                           mailbox_text(msgs))

    def do_no_mail(self, lineno, user):
        msgs = self.d.messages(user)
        if msgs:
            raise Mismatch(lineno, 'no message for %s' % user,
                           mailbox_text(msgs))

    def do_queue_empty(self, lineno, _):
        self.wait(lineno, 'an empty queue', self.d.wait_queue_empty)


def mailbox_text(msgs):
    if not msgs:
        return 'an empty mailbox'
    return '%d message(s):\n%s' % (len(msgs), b''.join(msgs).decode(
        'utf-8', 'replace'))


# ---------------------------------------------------------------- main

def report(path, lineno, expected, got, runner, daemon):
    out = sys.stderr
    out.write('\n%s:%d: mismatch\n  expected: %s\n  got:      %s\n'
              % (path, lineno, expected, got))
    if runner is not None:
        out.write('\n----- transcript (last 30 lines) -----\n%s\n'
                  % '\n'.join(runner.transcript[-30:]))
    if daemon is not None:
        out.write('\n----- daemon log tail %s -----\n%s\n'
                  % (daemon.logpath, daemon.log_tail(40)))


def stop(daemon):
    """The daemon's exit status on SIGTERM (1 when it ignored it)."""
    try:
        return daemon.stop()
    except AssertionError as e:
        sys.stderr.write('%s\n' % e)
        return 1


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: run_script.py SCRIPT')
    harness.need_env()
    path = sys.argv[1]
    try:
        config, steps = parse(path)
    except ScriptError as e:
        sys.exit('%s:%d: %s' % (path, e.args[0], e.args[1]))
    tmp = tempfile.mkdtemp(prefix='modmta-smtp-')
    d = harness.Daemon(os.path.join(tmp, 'd'))
    d.overrides = substitute(config, d)
    runner, failed = None, True
    try:
        d.start()
        runner = Runner(os.path.basename(path), d)
        runner.run(steps)
        failed = False
    except Mismatch as e:
        report(path, e.args[0] or 0, e.args[1], e.args[2], runner, d)
    except AssertionError as e:    # the daemon did not start
        sys.stderr.write('%s: %s\n' % (path, e))
    finally:
        if runner is not None and runner.client is not None:
            runner.client.close()
        rc = stop(d)
    print('\n'.join(runner.transcript) if runner else '')
    if rc:
        # a crash, or a sanitizer's report at exit
        sys.stderr.write('%s: modmta exited with %d on SIGTERM\n%s\n'
                         % (path, rc, d.log_text()))
        failed = True
    if failed or os.environ.get('E2E_KEEP'):
        sys.stderr.write('smtp: kept %s\n' % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
