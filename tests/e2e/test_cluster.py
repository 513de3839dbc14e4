"""Two modmta nodes sharing one redis-server (issue 10, point 9;
docs/cluster.md): different ports, spools, mail directories and host
names, the same "redis" section, and a redis-server of the test's own on
a UNIX socket.

Shared across the nodes: a sender's messages per hour, a domain's
recipients per hour, a client's concurrent connections and connections
per minute (ratelimit), the POP-before-SMTP record (a POP3 login on
node 1 opens relaying on node 2), a POP3 mailbox's lease on a mail
directory both nodes serve ([IN-USE]), failed-login lockouts (pop3 and
SMTP AUTH), pop3's redis: passdb (a password set with `modmtactl map
set` through node 1 logs in on node 2). `modmtactl reload
--cluster` reports each node: reloaded, a broken configuration's errors,
a hung or killed node as "no answer", a node stopped cleanly no longer
listed, a renamed node under its new name. Redis stopped during traffic:
4xx where a limit needs it, no crash, every acknowledged message
delivered once; started again, mail and reload --cluster work again
without restarting the daemons.

Clients bind to 127.0.0.5 and neighbours where the address matters:
mynetworks holds only 127.0.0.1."""

import os
import signal
import smtplib
import threading
import time

import harness
from harness import make_message, send_mail, smtp
from redisserver import RedisServer
from test_pop3 import Pop3Daemon
import test_pop_before_smtp
from test_ratelimit import window_room

NAMES = ('mx1', 'mx2')
DOMAIN = '.e2e.test'


class Cluster(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.redis = RedisServer(os.path.join(self.tmp, 'redis'))
        self.peer_logs.append(self.redis.logpath)
        self.redis.start()

    def tearDown(self):
        for d in self._daemons:
            if d.running():
                d.signal(signal.SIGCONT)
        super().tearDown()
        self.redis.stop()

    # -- set-up
    def node(self, name, maildir=None, ratelimit=None, pop3=None):
        """A node with relay_access (POP-before-SMTP), auth_sasl,
        store_mbox and pop3 (all on maildir, default its own), and
        ratelimit first when given."""
        listeners = [{'name': 'smtp', 'tls': 'none'},
                     {'name': 'pop3', 'protocol': 'pop3', 'tls': 'none'}]
        d = Pop3Daemon(os.path.join(self.tmp, name), listeners)
        self._daemons.append(d)
        maildir = maildir or d.maildir
        passwd = os.path.join(d.dir, 'passwd')
        with open(passwd, 'w') as f:
            f.write('bob:{PLAIN}pw\nalice:{PLAIN}secret\n')
        modules = [
            {'module': 'relay_access', 'mynetworks': ['127.0.0.1/32'],
             'pop_before_smtp': True},
            {'module': 'auth_sasl', 'passdb': 'file:' + passwd,
             'allow_plaintext_loopback': True, 'max_failures': 3},
            {'module': 'store_mbox', 'directory': maildir, 'users': 'any'},
            dict({'module': 'pop3', 'directory': maildir,
                  'passdb': 'file:' + passwd, 'pop_before_smtp': 600,
                  'max_failures': 3}, **(pop3 or {}))]
        if ratelimit is not None:
            modules.insert(0, dict({'module': 'ratelimit'}, **ratelimit))
        d.overrides.update({'hostname': name + DOMAIN,
                            'redis': self.redis.config(),
                            'modules': modules})
        d.maildir = maildir
        d.start()
        self.wait_registered(d)
        return d

    def pair(self, **kw):
        return [self.node(n, **kw) for n in NAMES]

    def wait_registered(self, d, times=1):
        """Until the node logged its registration `times` times in all."""
        line = 'cluster: node=%s registered' % d.overrides['hostname']
        harness.wait_for(lambda: d.log_text().count(line) >= times,
                         timeout=30, what=line)

    # -- clients from a chosen address: test_pop_before_smtp's (its
    # module, not its class: unittest would run the class's tests here)
    pop = test_pop_before_smtp.PopBeforeSmtp.pop
    pop_error = test_pop_before_smtp.PopBeforeSmtp.pop_error
    rcpt = test_pop_before_smtp.PopBeforeSmtp.rcpt
    auth_plain = test_pop_before_smtp.PopBeforeSmtp.auth_plain

    def reload_cluster(self, d, *args):
        return d.ctl('reload', '--cluster', *args)

    # -- shared state
    def test_rate_limit_across_nodes(self):
        window_room(3600, 60)
        d1, d2 = self.pair(ratelimit={'sender_messages_per_hour': 4})
        for i, d in enumerate((d1, d2, d1, d2)):
            with smtp(d.port()) as s:
                send_mail(s, 'alice@localhost', ['bob@localhost'],
                          make_message('rl%d@e2e.test' % i))
        self.assertEqual(self.redis.cli(
            'GET', 'modmta:ratelimit:ratelimit:msg:%d:from:alice@localhost'
            % (time.time() // 3600)), '4')
        for d in (d1, d2):
            with smtp(d.port()) as s:
                s.ehlo()
                code, text = s.mail('alice@localhost')
                self.assertEqual(code, 450, text)
                self.assertEqual(text.decode(),
                                 '4.7.1 Error: sender alice@localhost '
                                 'exceeded 4 messages per hour')
                # another sender is not limited
                self.assertEqual(s.rset()[0], 250)
                send_mail(s, 'carol@localhost', ['bob@localhost'],
                          make_message('c-%s@e2e.test' % d.dir[-3:]))
            self.assertRegex(d.log_text(),
                             'refuse: limit=sender_messages_per_hour '
                             'key=ratelimit:ratelimit:msg:[0-9]+:'
                             'from:alice@localhost')
            d.wait_messages('bob', 3)
            d.wait_queue_empty()
            self.assertEqual(len(d.messages('bob')), 3)

    def test_domain_recipients_across_nodes(self):
        window_room(3600, 60)
        d1, d2 = self.pair(ratelimit={'domain_recipients_per_hour': 3})
        with smtp(d1.port()) as s:
            send_mail(s, 'alice@localhost', ['r1@localhost', 'r2@localhost'],
                      make_message('dom1@e2e.test'))
        with smtp(d2.port()) as s:
            send_mail(s, 'carol@localhost', ['r3@localhost'],
                      make_message('dom2@e2e.test'))
        self.assertEqual(self.redis.cli(
            'GET', 'modmta:ratelimit:ratelimit:domain:%d:localhost'
            % (time.time() // 3600)), '3')
        for d in (d1, d2):
            with smtp(d.port()) as s:
                s.ehlo()
                self.assertEqual(s.mail('dave@localhost')[0], 250)
                code, text = s.rcpt('r4@localhost')
                self.assertEqual(code, 450, text)
                self.assertEqual(text.decode(),
                                 '4.7.1 Error: domain localhost exceeded 3 '
                                 'recipients per hour')
        d1.wait_messages('r2', 1)
        d2.wait_messages('r3', 1)

    def connect_from(self, d, source):
        """An SMTP session to d from source: (client or None, greeting
        code, greeting text)."""
        try:
            s = smtplib.SMTP('127.0.0.1', d.port(), timeout=30,
                             source_address=(source, 0))
        except smtplib.SMTPConnectError as e:
            return None, e.smtp_code, e.smtp_error.decode()
        return s, 220, ''

    def quit(self, s):
        """QUIT, then wait for the server to close: it has run the
        modules' disconnect by then."""
        self.assertEqual(s.docmd('QUIT')[0], 221)
        while s.sock.recv(4096):
            pass
        s.close()

    def test_client_connections_across_nodes(self):
        d1, d2 = self.pair(ratelimit={'client_connections': 2,
                                      'client_connections_per_minute': 5})
        # (the harness's start probes come from 127.0.0.1, not counted;
        # the room is waited for once both nodes run)
        window_room(60, 40)
        a, code, _ = self.connect_from(d1, '127.0.0.7')
        self.assertEqual(code, 220)
        b, code, _ = self.connect_from(d2, '127.0.0.7')
        self.assertEqual(code, 220)
        # two open at once, one on each node: a third on either is refused
        _, code, text = self.connect_from(d1, '127.0.0.7')
        self.assertEqual((code, text), (421, '4.7.0 mx1.e2e.test Error: too '
                                             'many connections from '
                                             '127.0.0.7 (at most 2 at once)'))
        # another client has its own count
        c, code, _ = self.connect_from(d1, '127.0.0.8')
        self.assertEqual(code, 220)
        self.quit(c)
        # a session that ends on node 1 frees a place on node 2
        self.quit(a)
        e, code, _ = self.connect_from(d2, '127.0.0.7')
        self.assertEqual(code, 220)
        self.quit(b)
        self.quit(e)
        # five connections in this minute (the refused one too): the
        # sixth is refused on either node
        f, code, _ = self.connect_from(d1, '127.0.0.7')
        self.assertEqual(code, 220)
        self.quit(f)
        for d in (d2, d1):
            _, code, text = self.connect_from(d, '127.0.0.7')
            self.assertEqual(code, 421, text)
            self.assertIn('(at most 5 per minute)', text)

    def test_pop3_redis_passdb_across_nodes(self):
        def map_set(d, pw):
            r = d.ctl('map', 'set', 'redis:passwd:', 'bob',
                      harness.passwd_entry('bob', pw))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        d1, d2 = self.pair(pop3={'passdb': 'redis:passwd:'})
        self.assertTrue(self.pop_error(d2, '127.0.0.5', password='first')
                        .startswith(b'-ERR [AUTH]'))
        map_set(d1, 'first')
        p = self.pop(d2, '127.0.0.5', password='first')
        self.assertEqual(p.stat()[0], 0)
        p.quit()
        self.assertTrue(self.pop_error(d2, '127.0.0.6', password='no')
                        .startswith(b'-ERR [AUTH]'))
        # changed through node 1: node 2 knows at once, and node 1 too
        map_set(d1, 'second')
        self.assertTrue(self.pop_error(d2, '127.0.0.6', password='first')
                        .startswith(b'-ERR [AUTH]'))
        for d in (d2, d1):
            self.pop(d, '127.0.0.5', password='second').quit()

    def test_pop_before_smtp_across_nodes(self):
        d1, d2 = self.pair()
        code, text = self.rcpt(d2, '127.0.0.5')
        self.assertEqual(code, 554, text)
        # a POP3 login on node 1 opens relaying on node 2
        self.pop(d1, '127.0.0.5').quit()
        code, text = self.rcpt(d2, '127.0.0.5')
        self.assertEqual(code, 250, text)
        self.assertIn('rule=pop-before-smtp user="bob"', d2.log_text())
        # for that address only
        self.assertEqual(self.rcpt(d2, '127.0.0.6')[0], 554)
        self.assertEqual(self.rcpt(d1, '127.0.0.5')[0], 250)

    def test_in_use_across_nodes(self):
        shared = os.path.join(self.tmp, 'mail')
        os.makedirs(shared)
        d1, d2 = self.pair(maildir=shared)
        with smtp(d1.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('lease@e2e.test'))
        d1.wait_messages('bob', 1)
        first = self.pop(d1, '127.0.0.5')
        self.assertEqual(first.stat()[0], 1)
        self.assertIn(b'[IN-USE]', self.pop_error(d2, '127.0.0.6'))
        first.quit()
        # QUIT gave the lease back: node 2 has it now, node 1 is refused
        second = self.pop(d2, '127.0.0.6')
        self.assertEqual(second.stat()[0], 1)
        self.assertIn(b'[IN-USE]', self.pop_error(d1, '127.0.0.5'))
        second.quit()

    def test_lockout_across_nodes(self):
        d1, d2 = self.pair()
        # pop3: three wrong passwords from one address, on either node
        for d in (d1, d2, d1):
            self.assertTrue(self.pop_error(d, '127.0.0.8', password='no')
                            .startswith(b'-ERR [AUTH]'))
        for d in (d2, d1):
            self.assertIn(b'Too many failed logins',
                          self.pop_error(d, '127.0.0.8'))
        # SMTP AUTH: the same across the nodes
        self.assertEqual([self.auth_plain(d, '127.0.0.9', 'no')
                          for d in (d1, d2, d1)], [535, 535, 421])
        self.assertEqual(self.auth_plain(d2, '127.0.0.9', 'pw'), 421)
        # another client is not affected
        self.assertEqual(self.auth_plain(d2, '127.0.0.10', 'pw'), 235)

    # -- reload --cluster
    def assertReport(self, r, lines, rc):
        self.assertEqual(r.stdout.splitlines(), lines, r.stdout + r.stderr)
        self.assertEqual(r.returncode, rc, r.stdout + r.stderr)

    def test_reload_cluster(self):
        d1, d2 = self.pair()
        r = self.reload_cluster(d1)
        self.assertReport(r, ['mx1.e2e.test: reloaded',
                              'mx2.e2e.test: reloaded'], 0)
        for d in (d1, d2):
            self.assertRegex(d.log_text(), r'cluster: reload id=[0-9a-f]{32} '
                             r'answered "reloaded"')
            self.assertIn('generation=2 config=', d.log_text())
        # node 2 gets another name: it answers under the name it was
        # asked by, then registers under the new one
        d2.overrides['hostname'] = 'mx2b.e2e.test'
        d2.write_config()
        r = self.reload_cluster(d2)
        self.assertReport(r, ['mx1.e2e.test: reloaded',
                              'mx2.e2e.test: reloaded'], 0)
        with smtp(d2.port()) as s:
            self.assertTrue(s.ehlo()[1].startswith(b'mx2b.e2e.test'))
        self.wait_registered(d2)
        r = self.reload_cluster(d1)
        self.assertReport(r, ['mx1.e2e.test: reloaded',
                              'mx2b.e2e.test: reloaded'], 0)

    def test_reload_cluster_broken_config(self):
        d1, d2 = self.pair()
        cfg = d2.config()
        cfg['modules'].append({'module': 'no_such_module'})
        d2.write_config(cfg)
        r = self.reload_cluster(d1)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], 'mx1.e2e.test: reloaded', r.stdout)
        self.assertTrue(lines[1].startswith(
            'mx2.e2e.test: error: $.modules[4].module: module '
            '"no_such_module" not found'), r.stdout)
        self.assertEqual(len(lines), 2, r.stdout)
        # node 2 keeps serving on its old configuration
        with smtp(d2.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('after@e2e.test'))
        d2.wait_messages('bob', 1)

    def test_reload_cluster_no_answer(self):
        d1, d2 = self.pair()
        # a hung node is still registered, and does not answer
        d2.signal(signal.SIGSTOP)
        try:
            # the timeout is also how long d1 has to reload and answer
            # (an ASan daemon on a busy machine): not too short
            r = self.reload_cluster(d1, '--timeout', '10')
        finally:
            d2.signal(signal.SIGCONT)
        self.assertReport(r, ['mx1.e2e.test: reloaded',
                              'mx2.e2e.test: no answer'], 1)
        # a killed one too, until its registration expires
        d2.kill()
        # (5 s: d2's registration, renewed every 10 s, lives 30 s)
        r = self.reload_cluster(d1, '--timeout', '5')
        self.assertReport(r, ['mx1.e2e.test: reloaded',
                              'mx2.e2e.test: no answer'], 1)
        # restarted, it takes its name back at once (same machine, same
        # control socket: the same node)
        d2.start(keep_ports=True)
        self.wait_registered(d2, times=2)
        self.assertNotIn('another node registered', d2.log_text())
        r = self.reload_cluster(d1)
        self.assertReport(r, ['mx1.e2e.test: reloaded',
                              'mx2.e2e.test: reloaded'], 0)
        # a node stopped on purpose has left the cluster
        self.assertEqual(d2.stop(), 0)
        r = self.reload_cluster(d1)
        self.assertReport(r, ['mx1.e2e.test: reloaded'], 0)

    def test_reload_cluster_same_hostname(self):
        d1 = self.node('mx1')
        d2 = Pop3Daemon(os.path.join(self.tmp, 'dup'))
        self._daemons.append(d2)
        d2.overrides.update({'hostname': 'mx1' + DOMAIN,
                             'redis': self.redis.config()})
        d2.start()
        harness.wait_for(lambda: 'another node registered this hostname'
                         in d2.log_text(), timeout=30,
                         what='the duplicate hostname warning')
        r = self.reload_cluster(d1)
        self.assertReport(r, ['mx1.e2e.test: reloaded'], 0)
        # the duplicate neither reloaded nor answered under mx1's name
        harness.wait_for(lambda: 'cluster: reload id=' in d2.log_text()
                         and ' ignored: node=mx1' + DOMAIN
                         in d2.log_text(), what='the duplicate ignoring')
        self.assertNotIn('reload requested', d2.log_text())
        # so a registered node that cannot answer is reported so, not
        # with the duplicate's answer
        d1.signal(signal.SIGSTOP)
        r = self.reload_cluster(d2, '--timeout', '3')
        d1.signal(signal.SIGCONT)
        self.assertReport(r, ['mx1.e2e.test: no answer'], 1)
        self.assertNotIn('reload requested', d2.log_text())

    def test_reload_cluster_needs_redis(self):
        d = self.daemon()
        r = d.ctl('reload', '--cluster')
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('reload --cluster needs a "redis" section',
                      r.stderr)
        r = d.ctl('reload', '--clusterr')
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn('usage: modmtactl reload [--cluster', r.stderr)

    # -- Redis down
    def test_redis_outage(self):
        """Redis stopped during traffic to both nodes, then started."""
        d1, d2 = self.pair(ratelimit={'sender_messages_per_hour': 100000})
        stop = threading.Event()
        lock = threading.Lock()
        log = {d1: [], d2: []}      # (code, msgid) per transaction

        def traffic(d, tag):
            n = 0
            while not stop.is_set():
                n += 1
                msgid = '%s-%d@e2e.test' % (tag, n)
                try:
                    with smtp(d.port()) as s:
                        s.ehlo()
                        code, _ = s.mail('alice@localhost')
                        if code == 250:
                            code, _ = s.rcpt('bob@localhost')
                        if code == 250:
                            code, _ = s.data(make_message(msgid))
                except smtplib.SMTPResponseException as e:
                    code = e.smtp_code
                except (smtplib.SMTPException, OSError):
                    code = 0    # fails the test below: never expected
                with lock:
                    log[d].append((code, msgid))
                time.sleep(0.05)

        def codes(d, since=0):
            with lock:
                return [c for c, _ in log[d][since:]]

        threads = [threading.Thread(target=traffic, args=(d, d.dir[-3:]))
                   for d in (d1, d2)]
        for t in threads:
            t.start()
        try:
            for d in (d1, d2):
                harness.wait_for(lambda: codes(d).count(250) >= 3,
                                 what='mail before the outage')
            self.redis.stop()
            marks = {d: len(codes(d)) for d in (d1, d2)}
            for d in (d1, d2):
                harness.wait_for(
                    lambda: any(400 <= c < 500
                                for c in codes(d, marks[d])),
                    what='4xx while Redis is down')
            self.redis.start()
            marks = {d: len(codes(d)) for d in (d1, d2)}
            for d in (d1, d2):
                harness.wait_for(lambda: codes(d, marks[d]).count(250) >= 3,
                                 what='mail after Redis is back')
        finally:
            stop.set()
            for t in threads:
                t.join()
        for d in (d1, d2):
            self.assertTrue(d.running(), 'the daemon died')
            self.assertFalse([c for c in codes(d) if c >= 500 or
                              (c < 400 and c != 250)], codes(d))
            self.assertIn(451, codes(d))
            self.assertIn('store error: limit=sender_messages_per_hour',
                          d.log_text())
            acked = sorted(m for c, m in log[d] if c == 250)
            d.wait_messages('bob', len(acked))
            d.wait_queue_empty()
            got = sorted(harness.header(m, 'Message-ID')[0].strip('<>')
                         for m in d.messages('bob'))
            self.assertEqual(got, acked)
        # the nodes register again in the new (empty) Redis, at their
        # next beat

        def reloaded():
            r = self.reload_cluster(d1, '--timeout', '5')
            return r.returncode == 0 and r.stdout.splitlines() == [
                'mx1.e2e.test: reloaded', 'mx2.e2e.test: reloaded']
        harness.wait_for(reloaded, timeout=60,
                         what='reload --cluster after the outage')


if __name__ == '__main__':
    harness.main()
