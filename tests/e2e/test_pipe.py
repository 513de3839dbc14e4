"""deliver_pipe end to end: the real daemon (as root, as the harness
runs it) hands messages to commands running as "nobody". procmail files
a message by a recipe into a Maildir folder; a command that exits 75 is
deferred, then delivered when the queue is flushed; EX_NOUSER bounces
with the command's output in the DSN; a command over its time limit is
killed with what it started and the message deferred (and what a
command leaves in the background when it exits is killed too); a message that
already went through the recipient (Delivered-To) bounces; shell syntax in
an address reaches the command as one argument and runs nothing; an
alias's "|command" from a root-owned aliases file is run, and a client
naming its internal recipient itself is refused; the core's
recipient_delimiter cuts ${user} and EXTENSION."""

import os
import pwd
import re
import resource
import subprocess

import harness
from harness import make_message, send_mail, smtp, wait_for

SENDER = 'alice@localhost'
# deferred mail stays put until the test flushes the queue
QUEUE = {'retry_min': 3600, 'retry_max': 3600}
NOBODY = pwd.getpwnam('nobody')


def process_gone(pid):
    """True when pid is gone; a zombie waiting for init counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(') ')[1].startswith('Z')
    except FileNotFoundError:
        return True


class Pipe(harness.TestCase):

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)   # the commands run as nobody
        self.out = os.path.join(self.tmp, 'out')
        os.mkdir(self.out)
        os.chown(self.out, NOBODY.pw_uid, NOBODY.pw_gid)

    def script(self, name, text):
        """An executable script owned by root, run by the daemon."""
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write('#!/bin/sh\n' + text)
        os.chmod(path, 0o755)
        return path

    def mta(self, pipe, extra=()):
        """modmta: deliver_pipe (pipe: its keys) for pipe.test, the rest
        (the sender's notices) to store_mbox."""
        d = self.daemon(start=False, queue=QUEUE)
        d.overrides['local_domains'] = ['localhost', 'pipe.test']
        conf = {'module': 'deliver_pipe', 'user': 'nobody',
                'domains': ['pipe.test']}
        conf.update(pipe)
        d.overrides['modules'] = list(extra) + [conf, {
            'module': 'store_mbox', 'directory': d.maildir,
            'users': 'any'}]
        return d.start()

    def send(self, d, rcpts, msgid, subject='pipe'):
        with smtp(d.port()) as s:
            return send_mail(s, SENDER, rcpts, make_message(
                msgid, subject=subject, sender=SENDER, to=rcpts[0]))

    def listing(self, d):
        r = d.ctl('queue')
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def read(self, name):
        with open(os.path.join(self.out, name), 'rb') as f:
            return f.read()

    # -- procmail

    def test_procmail_recipe(self):
        rc = os.path.join(self.tmp, 'procmailrc')
        with open(rc, 'w') as f:
            f.write('MAILDIR=%s\n'
                    'LOGFILE=%s/procmail.log\n'
                    ':0\n* ^Subject:.*invoice\nbilling/\n'
                    ':0\ninbox/\n' % (self.out, self.out))
        d = self.mta({'command': ['/usr/bin/procmail', '-a', '${extension}',
                                  rc],
                      'recipient_delimiter': '+'})
        qid = self.send(d, ['bob+accounts@pipe.test'], 'inv@e2e.test',
                        subject='invoice 42')
        self.send(d, ['bob@pipe.test'], 'other@e2e.test', subject='hello')
        d.wait_queue_empty()
        billing = os.path.join(self.out, 'billing', 'new')
        inbox = os.path.join(self.out, 'inbox', 'new')
        [filed] = os.listdir(billing)
        [other] = os.listdir(inbox)
        with open(os.path.join(billing, filed), 'rb') as f:
            msg = f.read()
        # the headers local(8) adds, then the message with LF line ends
        self.assertTrue(msg.startswith(
            b'Return-Path: <alice@localhost>\n'
            b'X-Original-To: bob+accounts@pipe.test\n'
            b'Delivered-To: bob+accounts@pipe.test\n'), msg[:200])
        self.assertIn(b'Subject: invoice 42\n', msg)
        self.assertIn(qid.encode(), msg)
        self.assertNotIn(b'\r\n', msg)
        # procmail ran as nobody
        self.assertEqual(os.stat(os.path.join(billing, filed)).st_uid,
                         NOBODY.pw_uid)
        self.assertRegex(d.log_text(), r'%s: to=<bob\+accounts@pipe.test>'
                         r'.*status=sent' % qid)

    def test_core_recipient_delimiter(self):
        """Without a key of its own the instance cuts the extension at
        the core's recipient_delimiter, for its users and EXTENSION."""
        log = os.path.join(self.out, 'env')
        cmd = self.script('env.sh', 'printf "%s %s %s\\n" "$LOCAL" "$USER" '
                          '"$EXTENSION" >> "$1"\n')
        d = self.daemon(start=False, queue=QUEUE, recipient_delimiter='+-')
        d.overrides['local_domains'] = ['localhost', 'pipe.test']
        d.overrides['modules'] = [
            {'module': 'deliver_pipe', 'user': 'nobody',
             'domains': ['pipe.test'], 'users': ['bob'],
             'command': [cmd, log, '${user}']},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        d.start()
        self.send(d, ['bob+lists@pipe.test', 'bob-news@pipe.test',
                      'carol+x@pipe.test'], 'ext@e2e.test')
        d.wait_queue_empty()
        # not one of the command's users: store_mbox's carol
        self.assertEqual(len(d.messages('carol')), 1)
        self.assertEqual(sorted(self.read('env').decode().splitlines()),
                         ['bob+lists nobody lists', 'bob-news nobody news'])

    # -- exit statuses

    def test_tempfail_then_retry(self):
        flag = os.path.join(self.out, 'tried')
        cmd = self.script('flaky.sh',
                          'if [ ! -e "$1" ]; then : > "$1"; '
                          'echo "mailbox busy, try later"; exit 75; fi\n'
                          'cat > "$2"\n')
        d = self.mta({'command': [cmd, flag,
                                  os.path.join(self.out, 'delivered')]})
        qid = self.send(d, ['bob@pipe.test'], 'flaky@e2e.test')
        wait_for(lambda: 'mailbox busy' in self.listing(d),
                 what='the deferral in the queue')
        listing = self.listing(d)
        self.assertIn(qid, listing)
        self.assertIn('EX_TEMPFAIL', listing)
        self.assertFalse(os.path.exists(os.path.join(self.out,
                                                     'delivered')))
        self.assertEqual(d.ctl('flush').returncode, 0)
        d.wait_queue_empty()
        self.assertIn(b'Message-ID: <flaky@e2e.test>',
                      self.read('delivered'))
        self.assertEqual(d.messages('alice'), [], 'a notice was sent')

    def test_output_is_one_status_line(self):
        """A command's multi-line output (CR, LF, tab) is the recipient's
        status as one line: the queue listing shows no line of its own."""
        cmd = self.script('chatty.sh',
                          'printf "busy\\nX-Fake: two\\r\\n\\tthree\\n"; '
                          'exit 75\n')
        d = self.mta({'command': [cmd]})
        qid = self.send(d, ['bob@pipe.test'], 'chatty@e2e.test')
        wait_for(lambda: 'busy' in self.listing(d),
                 what='the deferral in the queue')
        listing = self.listing(d)
        self.assertIn(qid, listing)
        self.assertIn('busy X-Fake: two   three)', listing)
        for line in listing.splitlines():
            self.assertFalse(line.startswith(('X-Fake', '\tthree')), line)

    def test_nouser_bounces_with_output(self):
        d = self.mta({'command': ['/bin/sh', '-c',
                                  'echo "no ticket queue named $$1"; '
                                  'exit 67', 'sh', '${user}']})
        self.send(d, ['sales@pipe.test'], 'nouser@e2e.test')
        [dsn] = d.wait_messages('alice', 1)
        d.wait_queue_empty()
        text = dsn.decode('utf-8', 'replace')
        self.assertIn('sales@pipe.test', text)
        self.assertIn('Status: 5.1.1', text)
        self.assertIn('no ticket queue named sales', text)
        self.assertIn('EX_NOUSER', text)

    def test_delivered_to_loop_bounces(self):
        ran = os.path.join(self.out, 'ran')
        d = self.mta({'command': ['/usr/bin/touch', ran]})
        with smtp(d.port()) as s:
            send_mail(s, SENDER, ['bob@pipe.test'],
                      b'Delivered-To: bob@pipe.test\r\n' + make_message(
                          'loop@e2e.test', sender=SENDER))
        [dsn] = d.wait_messages('alice', 1)
        self.assertIn(b'Status: 5.4.6', dsn)
        self.assertIn(b'mail forwarding loop', dsn)
        self.assertFalse(os.path.exists(ran))

    def test_command_gets_the_start_limit(self):
        """The daemon raises its open-files soft limit for its sessions;
        a command starts with the soft limit the daemon was given."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard <= 512:
            self.skipTest('the hard descriptor limit (%d) leaves nothing '
                          'to raise' % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        try:
            cmd = self.script('limit.sh', 'ulimit -Sn > "$1"\n')
            d = self.mta({'command': [cmd, os.path.join(self.out,
                                                         'limit')]})
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with open('/proc/%d/limits' % d.pid) as f:
            [line] = [l for l in f if l.startswith('Max open files')]
        self.assertNotEqual(line.split()[3], '512', line)
        self.send(d, ['bob@pipe.test'], 'limit@e2e.test')
        d.wait_queue_empty()
        self.assertEqual(self.read('limit').strip(), b'512')

    def test_time_limit_kills(self):
        pidfile = os.path.join(self.out, 'pid')
        cmd = self.script('slow.sh', 'sleep 300 &\necho $! > "$1"\n'
                                     'echo working\nwait\n')
        # (long enough for the shell to start and write before the kill)
        d = self.mta({'command': [cmd, pidfile], 'time_limit': 5})
        qid = self.send(d, ['bob@pipe.test'], 'slow@e2e.test')
        wait_for(lambda: 'time limit' in self.listing(d),
                 what='the time limit in the queue')
        self.assertIn(qid, self.listing(d))
        self.assertIn('working', self.listing(d))
        pid = int(self.read('pid'))
        wait_for(lambda: process_gone(pid),
                 what='the background sleep killed')
        self.assertEqual(d.messages('alice'), [], 'a notice was sent')

    def test_background_child_killed_on_exit(self):
        """A command that leaves a child running and exits 0: delivered,
        and the child is killed with its process group."""
        pidfile = os.path.join(self.out, 'bgpid')
        cmd = self.script('bg.sh', 'cat >/dev/null\n'
                                   'sleep 1000 </dev/null >/dev/null 2>&1 &\n'
                                   'echo $! > "$1"\nexit 0\n')
        d = self.mta({'command': [cmd, pidfile]})
        qid = self.send(d, ['bob@pipe.test'], 'bg@e2e.test')
        d.wait_queue_empty()
        self.assertRegex(d.log_text(), r'%s: to=<bob@pipe.test>.*status=sent'
                         % qid)
        pid = int(self.read('bgpid'))
        wait_for(lambda: process_gone(pid),
                 what='the background sleep killed')

    # -- hostile addresses

    def test_shell_syntax_in_address_is_data(self):
        # short: a local part is at most 64 octets
        marker = '/tmp/pw%d' % os.getpid()
        cmd = self.script('record.sh',
                          'out="$1"; shift\n'
                          'printf "%s\\n" "$@" "$RECIPIENT" > "$out"\n')
        d = self.mta({'command': [cmd, os.path.join(self.out, 'args'),
                                  '${recipient}', '${user}', '${sender}']})
        local = '"$(touch %s);`touch %s`|x; >y -z"' % (marker, marker)
        try:
            with smtp(d.port()) as s:
                send_mail(s, SENDER, [local + '@pipe.test'],
                          make_message('meta@e2e.test', sender=SENDER))
            d.wait_queue_empty()
            args = self.read('args').decode().split('\n')
            self.assertEqual(args[:4], [local + '@pipe.test', local[1:-1],
                                        SENDER, local + '@pipe.test'])
            self.assertFalse(os.path.exists(marker))
            self.assertFalse(os.path.exists('/y'))
        finally:
            if os.path.exists(marker):
                os.unlink(marker)

    # -- alias |command

    def test_alias_command(self):
        out = os.path.join(self.out, 'alias')
        aliases = os.path.join(self.tmp, 'aliases')
        with open(aliases, 'w') as f:
            f.write('tickets: bob, "|/bin/sh -c \'env > %s.env; '
                    'cat > %s.msg\'"\n' % (out, out))
        os.chmod(aliases, 0o644)
        self.assertEqual(os.stat(aliases).st_uid, 0)
        d = self.mta({'alias_commands': True, 'domains': ['none.test']},
                     extra=[{'module': 'relay_access',
                             'mynetworks': ['127.0.0.0/8']},
                            {'module': 'alias', 'map': 'aliases:' + aliases,
                             'allow_commands': True},
                            # before deliver_pipe: it leaves the owned
                            # domain of command recipients alone
                            {'module': 'deliver_smtp'}])
        qid = self.send(d, ['tickets@localhost'], 'alias@e2e.test')
        d.wait_queue_empty()
        msg = self.read('alias.msg')
        self.assertIn(b'Message-ID: <alias@e2e.test>', msg)
        env = dict(l.split('=', 1) for l in
                   self.read('alias.env').decode().splitlines() if '=' in l)
        self.assertEqual(env['ORIGINAL_RECIPIENT'], 'tickets@localhost')
        self.assertEqual(env['SENDER'], SENDER)
        self.assertEqual(env['USER'], 'nobody')
        self.assertEqual(env['QUEUE_ID'], qid)
        self.assertEqual(os.stat(out + '.msg').st_uid, NOBODY.pw_uid)
        # and the address target got its copy
        self.assertEqual(len(d.messages('bob')), 1)
        # the internal recipient, named by a client: refused
        m = re.search(r'to=<(alias-command-[0-9a-f]{16}@'
                      r'alias-command\.invalid)>', d.log_text())
        self.assertIsNotNone(m, 'the command recipient in the log')
        r = self.rcpt_reply(d, m.group(1))
        self.assertReply(r, 550, '5.1.1')

    def test_root_refused(self):
        d = self.daemon(start=False)
        d.overrides['modules'] = [{'module': 'deliver_pipe',
                                   'command': ['/bin/true'],
                                   'user': 'root'}]
        d.ports = {'smtp': harness.free_port()}
        d.write_config()
        r = subprocess.run([harness.MODMTA, '--check-config', '-c', d.conf],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('$.modules[0].user', r.stdout + r.stderr)
        self.assertIn('never run as root', r.stdout + r.stderr)


if __name__ == '__main__':
    harness.main()
