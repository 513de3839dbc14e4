"""modmtactl round trip: queue, show, hold, release, delete, flush, stats.

Mail is kept in the queue by making store_mbox's directory a plain file
after start-up, so every delivery defers (ENOTDIR); the test checks that
this is what happens before relying on it."""

import json
import os
import shutil

import harness
from harness import make_message, send_mail, smtp


def find_key(obj, key):
    """The value of `key` anywhere in a JSON document, or None."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find_key(v, key)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find_key(v, key)
            if r is not None:
                return r
    return None


class Ctl(harness.TestCase):

    def ok(self, d, *args):
        r = d.ctl(*args)
        self.assertEqual(r.returncode, 0, '%s: %s%s'
                         % (' '.join(args), r.stdout, r.stderr))
        return r.stdout

    def stats(self, d):
        out = self.ok(d, 'stats')
        try:
            return json.loads(out)
        except ValueError:
            self.fail('stats is not JSON: %r' % out)

    def counter(self, d, key):
        v = find_key(self.stats(d), key)
        self.assertIsInstance(v, int, 'no counter %r in stats' % key)
        return v

    def test_round_trip(self):
        d = self.daemon(queue={'retry_min': 3600, 'retry_max': 3600,
                               'workers': 1})
        st = self.stats(d)
        self.assertIsInstance(st, dict)
        # break the mail directory: deliveries must defer
        shutil.rmtree(d.maildir)
        with open(d.maildir, 'w') as f:
            f.write('not a directory\n')
        ids = {}
        with smtp(d.port()) as s:
            for user in ('alice', 'bob', 'carol'):
                ids[user] = send_mail(s, 'sender@localhost',
                                      ['%s@localhost' % user],
                                      make_message('%s@e2e.test' % user,
                                                   to='%s@localhost' % user))
        harness.wait_for(lambda: self.counter(d, 'deferred') >= 3,
                         what='3 deferred deliveries')
        self.assertEqual(d.queue_ids(), set(ids.values()),
                         'deferred mail left the queue')
        self.assertEqual(self.counter(d, 'bounced'), 0)

        listing = self.ok(d, 'queue')
        for user, qid in ids.items():
            self.assertIn(qid, listing)
            self.assertIn('%s@localhost' % user, listing)
        shown = self.ok(d, 'show', ids['alice'])
        self.assertIn('alice@localhost', shown)
        self.assertIn('sender@localhost', shown)
        self.assertNotIn('bob@localhost', shown)

        self.ok(d, 'hold', ids['alice'])
        self.assertRegex(self.ok(d, 'show', ids['alice']).lower(),
                         r'hold|held')
        self.ok(d, 'delete', ids['carol'])
        self.assertNotIn(ids['carol'], self.ok(d, 'queue'))
        self.assertNotIn(ids['carol'], d.queue_ids())
        self.assertNotEqual(d.ctl('show', ids['carol']).returncode, 0)
        self.assertNotEqual(d.ctl('delete', ids['carol']).returncode, 0)
        self.assertNotEqual(d.ctl('show', 'NOSUCHID').returncode, 0)
        self.assertNotEqual(d.ctl('hold', '../../etc').returncode, 0)

        # repair the directory and flush: bob arrives, held alice stays
        os.unlink(d.maildir)
        os.mkdir(d.maildir)
        self.ok(d, 'flush')
        d.wait_messages('bob', 1)
        # one more message through the single worker, after the flush
        with smtp(d.port()) as s:
            send_mail(s, 'sender@localhost', ['dave@localhost'],
                      make_message('dave@e2e.test', to='dave@localhost'))
        d.wait_messages('dave', 1)
        harness.wait_for(lambda: d.queue_ids() == {ids['alice']},
                         what='only the held message in the queue')
        self.assertEqual(d.messages('alice'), [], 'held mail delivered')
        self.assertEqual(d.messages('carol'), [], 'deleted mail delivered')
        self.assertIn(ids['alice'], self.ok(d, 'queue'))

        self.ok(d, 'release', ids['alice'])
        self.ok(d, 'flush')
        d.wait_messages('alice', 1)
        d.wait_queue_empty()
        self.assertEqual(d.messages('carol'), [])
        self.assertGreaterEqual(self.counter(d, 'received'), 4)
        self.assertGreaterEqual(self.counter(d, 'delivered'), 3)

    def test_ctl_without_daemon(self):
        d = self.daemon(start=False)
        d.ports = {'smtp': harness.free_port()}
        d.write_config()
        r = d.ctl('stats')
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue((r.stdout + r.stderr).strip(), 'no error message')


if __name__ == '__main__':
    harness.main()
