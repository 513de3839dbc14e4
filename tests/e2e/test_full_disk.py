"""A full disk, for real: the spool and the mail directory each on a
small tmpfs, filled up. Nothing acknowledged is lost, nothing is left
half-written, and mail flows again once there is room.

The tmpfs mounts are made in a private mount namespace of this test
process (it re-executes itself under unshare -m), so they vanish with it
whatever happens. Needs root; skipped otherwise."""

import os
import subprocess
import sys
import unittest

import harness
from harness import make_message, send_mail, smtp, wait_for

ROOM = 48 * 1024            # left free on a filled file system


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0700' % size,
                    'tmpfs', path], check=True)


def fill(path, leave=ROOM):
    """A file taking all the free space of path's file system but leave
    octets; returns its name."""
    st = os.statvfs(path)
    name = os.path.join(path, 'filler')
    with open(name, 'wb') as f:
        f.write(b'\0' * max(0, st.f_bavail * st.f_frsize - leave))
    return name


def files_below(path):
    return [os.path.join(root, f) for root, _, names in os.walk(path)
            for f in names]


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def body(n, mark):
    line = ('%s ' % mark) * 9 + '\r\n'
    return line * (n // len(line)) + 'end-of-%s\r\n' % mark


@unittest.skipUnless(os.geteuid() == 0, 'needs root (tmpfs mounts)')
class FullDisk(harness.TestCase):

    def test_full_spool(self):
        """At DATA, a spool without room gives 452 4.3.1 and leaves no
        queue file; smaller mail still fits; once there is room the big
        one goes through."""
        d = self.daemon(start=False)
        mount_tmpfs(d.spool, '2m')
        d.start()
        filler = fill(d.spool)
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('a@localhost')[0], 250)
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)
            code, text = s.data(make_message('big1@e2e.test',
                                             body=body(200000, 'big1')))
            self.assertEqual(code, 452, text)
            self.assertTrue(text.startswith(b'4.3.1 '), text)
            # the session goes on; a small message still fits
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('small@e2e.test', body=body(2000, 'sm')))
        d.wait_messages('bob', 1)
        d.wait_queue_empty()
        self.assertEqual(files_below(os.path.join(d.spool, 'tmp')), [])
        os.unlink(filler)
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('big2@e2e.test', body=body(200000,
                                                               'big2')))
        msgs = d.wait_messages('bob', 2)
        self.assertEqual(len(msgs), 2)
        self.assertIn(b'end-of-sm', msgs[0])
        self.assertIn(b'end-of-big2', msgs[1])
        self.assertNotIn(b'big1', b''.join(msgs))

    def test_full_spool_at_commit(self):
        """The spool fills up at the commit: the content's first 64 KiB
        (the queue's write buffer) go out during DATA, the rest only at
        the commit, where there is no room left. 452 4.3.1 from the
        commit, nothing left behind, the same session goes on; once
        there is room the message goes through."""
        d = self.daemon(start=False)
        mount_tmpfs(d.spool, '2m')
        d.start()
        filler = fill(d.spool, leave=96 * 1024)
        msg = make_message('commit@e2e.test', body=body(110000, 'commit'))
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('a@localhost')[0], 250)
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)
            code, text = s.data(msg)
            self.assertEqual(code, 452, text)
            self.assertTrue(text.startswith(b'4.3.1 '), text)
            self.assertIn('queue: commit failed', d.log_text())
            self.assertEqual(files_below(os.path.join(d.spool, 'tmp')), [])
            self.assertEqual(d.queue_ids(), set())
            os.unlink(filler)
            send_mail(s, 'a@localhost', ['bob@localhost'], msg)
        msgs = d.wait_messages('bob', 1)
        d.wait_queue_empty()
        self.assertEqual(len(msgs), 1)
        self.assertTrue(msgs[0].rstrip().endswith(b'end-of-commit'),
                        msgs[0][-80:])

    def test_full_mail_directory(self):
        """A mail directory without room: the message is accepted (the
        spool has room), delivery is deferred, the mailbox is left
        exactly as it was; after room is made and the queue flushed, it
        is delivered once, whole."""
        d = self.daemon(start=False)
        mount_tmpfs(d.maildir, '512k')
        d.start()
        with smtp(d.port()) as s:
            send_mail(s, 'a@localhost', ['bob@localhost'],
                      make_message('first@e2e.test'))
        d.wait_messages('bob', 1)
        before = read(d.mailbox('bob'))
        filler = fill(d.maildir, leave=16 * 1024)
        with smtp(d.port()) as s:
            qid = send_mail(s, 'a@localhost', ['bob@localhost'],
                            make_message('second@e2e.test',
                                         body=body(100000, 'second')))
        wait_for(lambda: 'status=deferred' in d.log_text(),
                 what='a deferred delivery')
        self.assertIn(qid, d.queue_ids())
        self.assertEqual(read(d.mailbox('bob')), before)
        self.assertFalse(os.path.exists(d.mailbox('bob') + '.lock'))
        os.unlink(filler)
        r = d.ctl('flush')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        msgs = d.wait_messages('bob', 2)
        d.wait_queue_empty()
        self.assertEqual(len(msgs), 2)
        self.assertTrue(msgs[1].rstrip().endswith(b'end-of-second'),
                        msgs[1][-80:])


if __name__ == '__main__':
    if os.geteuid() == 0 and not os.environ.get('E2E_PRIVATE_MOUNTS'):
        os.environ['E2E_PRIVATE_MOUNTS'] = '1'
        os.execvp('unshare', ['unshare', '-m', '--propagation', 'private',
                              sys.executable] + sys.argv)
    harness.main()
