"""Injected I/O faults (tests/e2e/faultinject.c, preloaded into the
daemon): fsync, fdatasync, write, rename, fsetxattr, openat and unlink
fail (EIO, ENOSPC) or write short at each step of the queue commit, of
store_mbox and store_maildir deliveries and of a DSN's creation. Each
time: a fault before the acknowledgement gives the client the right 4xx
and the same session goes on; an acknowledged message is delivered once
the fault is used up (a flush retries it), never twice, byte-exact in a
mailbox that parses; the queue ends empty and the daemon serves."""

import email
import glob
import os

import harness
from harness import fault_env, send_mail, smtp, wait_for
from mailcheck import (check_exact, maildir_messages, mbox_messages,
                       message)

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')
# sizes around the queue's 64 KiB write buffer and the stores' buffers
SIZES = (300, 70000, 200000)


class Faults(harness.TestCase):

    def faulty(self, rules, modules=None, **overrides):
        d = self.daemon(start=False, queue={'retry_min': 3600,
                                            'retry_max': 3600}, **overrides)
        if modules is not None:
            d.overrides['modules'] = modules(d)
            d.overrides['module_path'] = [harness.MODULE_DIR,
                                          TEST_MODULE_DIR]
        d.env = fault_env(rules)
        return d.start()

    def fired(self, d, call):
        wait_for(lambda: 'faultinject: %s ' % call in d.log_text(),
                 what='the injected %s fault' % call)

    def drain(self, d):
        """Retry what was deferred until the queue is empty."""
        def empty():
            if not d.queue_ids():
                return True
            d.ctl('flush')
            return False
        wait_for(empty, 120, 'an empty queue (left: %s)'
                 % ' '.join(sorted(d.queue_ids())), interval=0.5)

    def burst(self, d, tag, first_reply=250, rcpts=('bob@localhost',)):
        """SIZES messages in one session; the first DATA must get
        first_reply (a 4xx is retried at once, on the same session).
        Returns Message-ID -> bytes of the acknowledged ones."""
        sent = {}
        with smtp(d.port()) as s:
            for i, size in enumerate(SIZES):
                mid = '%s-%d@e2e.test' % (tag, i)
                msg = message(mid, size, '%s/%d' % (tag, i))
                if i == 0 and first_reply != 250:
                    self.refused(s, msg, first_reply, rcpts)
                send_mail(s, 'alice@localhost', list(rcpts), msg)
                sent[mid] = msg
            # the daemon still serves: a new session gets its banner
            with smtp(d.port()) as s2:
                self.assertEqual(s2.noop()[0], 250)
        return sent

    def refused(self, s, msg, code, rcpts):
        s.ehlo_or_helo_if_needed()
        self.assertEqual(s.mail('alice@localhost')[0], 250)
        for r in rcpts:
            self.assertEqual(s.rcpt(r)[0], 250)
        got, text = s.data(msg)
        self.assertEqual(got, code, text)
        self.assertTrue(text.startswith(b'4.3.1 ' if code == 452
                                         else b'4.3.0 '), text)

    def mbox_case(self, rules, call, first_reply=250):
        d = self.faulty(rules)
        sent = self.burst(d, call, first_reply)
        self.fired(d, call)
        self.drain(d)
        check_exact(self, mbox_messages(d.mailbox('bob')), sent, 'bob')
        self.assertEqual(glob.glob(os.path.join(d.spool, 'tmp', '*', '*')),
                         [], 'left in tmp/')
        return d

    # ---- the queue commit (before the 250)

    def test_queue_write_eio(self):
        self.mbox_case(['write:/spool/tmp/:0:1:EIO'], 'write', 451)

    def test_queue_write_enospc(self):
        self.mbox_case(['write:/spool/tmp/:0:1:ENOSPC'], 'write', 452)

    def test_queue_write_short(self):
        self.mbox_case(['write:/spool/tmp/:0:20:short'], 'write')

    def test_queue_write_late_in_data(self):
        """The second buffer of the 70000-octet message: a write error
        after part of the content was written."""
        d = self.faulty(['write:/spool/tmp/:2:1:EIO'])
        sent = {}
        with smtp(d.port()) as s:
            small = message('late-0@e2e.test', 300, 'late0')
            send_mail(s, 'alice@localhost', ['bob@localhost'], small)
            sent['late-0@e2e.test'] = small
            big = message('late-1@e2e.test', 70000, 'late1')
            self.refused(s, big, 451, ['bob@localhost'])
            send_mail(s, 'alice@localhost', ['bob@localhost'], big)
            sent['late-1@e2e.test'] = big
        self.fired(d, 'write')
        self.drain(d)
        check_exact(self, mbox_messages(d.mailbox('bob')), sent, 'bob')

    def test_queue_create_fails(self):
        """The content file cannot be created at MAIL: 452 4.3.1 for a
        full disk, 451 4.3.0 otherwise; the session goes on."""
        for err, code in (('ENOSPC', 452), ('EIO', 451)):
            with self.subTest(err=err):
                d = self.faulty(['openat:/spool/tmp/:0:1:%s' % err])
                with smtp(d.port()) as s:
                    s.ehlo()
                    got, text = s.mail('alice@localhost')
                    self.assertEqual(got, code, text)
                    self.assertTrue(text.startswith(
                        b'4.3.1 ' if code == 452 else b'4.3.0 '), text)
                    msg = message('create@e2e.test', 300, 'create')
                    send_mail(s, 'alice@localhost', ['bob@localhost'], msg)
                self.fired(d, 'openat')
                self.drain(d)
                check_exact(self, mbox_messages(d.mailbox('bob')),
                            {'create@e2e.test': msg}, 'bob')
                d.stop()

    def test_queue_fsync_eio(self):
        self.mbox_case(['fsync:/spool/tmp/:0:1:EIO'], 'fsync', 451)

    def test_queue_dir_fsync_eio(self):
        """The group commit's fsync of queue/X/ after the rename."""
        self.mbox_case(['fsync:/spool/queue/:0:1:EIO'], 'fsync', 451)

    def test_queue_rename_eio(self):
        self.mbox_case(['rename:.msg$:0:1:EIO'], 'rename', 451)

    def test_queue_xattr_eio(self):
        """No xattr this time: the envelope goes to a file instead."""
        self.mbox_case(['fsetxattr:/spool/tmp/:0:1:EIO'], 'fsetxattr')

    def test_queue_header_edit_write_eio(self):
        """A header edit that moves the body in the spool file (the
        stream test module lengthens the Subject) fails to write, before
        the body moved or after (the headers' write, the file half
        rebuilt): 451 4.3.0 and nothing left in tmp/; sent again on the
        same session, the message is delivered once, edited, its body
        intact."""
        for skip, what in ((1, 'the move'), (2, 'the headers')):
            with self.subTest(fails=what):
                self.header_edit_case(skip)

    def header_edit_case(self, skip):
        def modules(d):
            return [{'module': 'stream'},
                    {'module': 'store_mbox', 'directory': d.maildir,
                     'users': 'any'}]
        # the content goes to the file in one write (it fits the 64 KiB
        # buffer); then the rebuild's: the body moved, the headers
        d = self.faulty(['write:/spool/tmp/:%d:1:EIO' % skip], modules)
        body = b''.join(b'line %06d of the body\r\n' % i
                        for i in range(1200))
        msg = (b'From: <alice@localhost>\r\nTo: <bob@localhost>\r\n'
               b'Subject: longer\r\nMessage-ID: <edit@e2e.test>\r\n'
               b'\r\n' + body)
        with smtp(d.port()) as s:
            s.ehlo_or_helo_if_needed()
            s.mail('alice@localhost')
            s.rcpt('bob@localhost')
            self.assertEqual(s.data(msg),
                             (451, b'4.3.0 Error: queue file write error'))
            send_mail(s, 'alice@localhost', ['bob@localhost'], msg)
        self.fired(d, 'write')
        self.drain(d)
        [got] = mbox_messages(d.mailbox('bob'))
        parsed = email.message_from_bytes(got)
        self.assertEqual(parsed['Message-ID'], '<edit@e2e.test>')
        self.assertTrue(parsed['Subject'].startswith('longer: '), got[:400])
        # the mbox stores lines with LF and ends a message with an empty
        # line
        stored = got.split(b'\n\n', 1)[1]
        self.assertEqual(stored.rstrip(b'\n'),
                         body.replace(b'\r\n', b'\n').rstrip(b'\n'))
        self.assertEqual(glob.glob(os.path.join(d.spool, 'tmp', '*', '*')),
                         [], 'left in tmp/')
        d.stop()

    def test_queue_envelope_file_faults(self):
        """No xattrs at all (the fallback commit), then each of its
        steps fails once in turn: fdatasync of the content, the write of
        the envelope file, its rename into queue/X/."""
        for rule, call in (('fdatasync:/spool/tmp/:0:1:EIO', 'fdatasync'),
                           ('write:.env$:0:1:ENOSPC', 'write'),
                           ('rename:.env$:0:1:EIO', 'rename')):
            with self.subTest(call=call):
                code = 452 if 'ENOSPC' in rule else 451
                d = self.mbox_case(['fsetxattr:/spool/:0:1000:ENOTSUP',
                                    rule], call, code)
                d.stop()

    # ---- store_mbox (after the 250)

    def test_mbox_write_eio(self):
        self.mbox_case(['write:/mail/bob$:1:1:EIO'], 'write')

    def test_mbox_write_enospc(self):
        self.mbox_case(['write:/mail/bob$:0:2:ENOSPC'], 'write')

    def test_mbox_write_short(self):
        self.mbox_case(['write:/mail/bob$:0:50:short'], 'write')

    def test_mbox_fsync_eio(self):
        self.mbox_case(['fsync:/mail/bob$:0:1:EIO'], 'fsync')

    def test_mbox_lock_note_eio(self):
        """The dot-lock's note (where the mailbox ended) cannot be
        written: only a crash's repair would miss it, the delivery goes
        on."""
        # an O_TMPFILE linked in as bob.lock: its descriptor's path is
        # the unnamed file's, "mail/#INODE (deleted)"
        self.mbox_case(['write:/mail/#:0:3:EIO'], 'write')

    def test_envelope_update_faults(self):
        """After a deferred delivery the envelope is rewritten
        (queue_update): its write, fdatasync and rename fail too."""
        d = self.faulty(['fsync:/mail/bob$:0:3:EIO',
                         'write:.u:0:1:EIO',
                         'fdatasync:/spool/tmp/:0:1:EIO',
                         'rename:.env$:0:1:EIO'])
        sent = self.burst(d, 'update')
        for call in ('fsync', 'write', 'fdatasync', 'rename'):
            self.fired(d, call)
        self.drain(d)
        check_exact(self, mbox_messages(d.mailbox('bob')), sent, 'bob')

    def test_envelope_update_create_fails(self):
        """After a deferral the envelope's temporary file cannot be
        created."""
        d = self.faulty(['fsync:/mail/bob$:0:2:EIO',
                         'openat:.u0$:0:1:ENOSPC'])
        sent = self.burst(d, 'ucreate')
        self.fired(d, 'openat')
        self.drain(d)
        check_exact(self, mbox_messages(d.mailbox('bob')), sent, 'bob')

    def test_envelope_update_fails_after_partial_delivery(self):
        """bob is delivered, carol deferred, and the envelope that
        records it cannot be written: the retry must not deliver to bob
        again."""
        d = self.faulty(['fsync:/mail/carol$:0:1:EIO',
                         'write:.u:0:1:EIO'])
        msg = message('partial@e2e.test', 3000, 'partial')
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost',
                                             'carol@localhost'], msg)
        self.fired(d, 'fsync')
        self.fired(d, 'write')
        self.drain(d)
        for user in ('bob', 'carol'):
            check_exact(self, mbox_messages(d.mailbox(user)),
                        {'partial@e2e.test': msg}, user)

    # ---- store_maildir

    def maildir_case(self, rules, call):
        def modules(d):
            return [{'module': 'store_maildir', 'directory': d.maildir}]
        d = self.faulty(rules, modules)
        sent = self.burst(d, call)
        self.fired(d, call)
        self.drain(d)
        box = os.path.join(d.maildir, 'bob')
        check_exact(self, maildir_messages(box), sent, 'bob')
        self.assertEqual(os.listdir(os.path.join(box, 'tmp')), [])
        return d

    def test_maildir_write_eio(self):
        self.maildir_case(['write:/mail/bob/tmp/:0:1:EIO'], 'write')

    def test_maildir_write_short(self):
        self.maildir_case(['write:/mail/bob/tmp/:0:50:short'], 'write')

    def test_maildir_create_enospc(self):
        self.maildir_case(['openat:/mail/bob/tmp/:0:1:ENOSPC'], 'openat')

    def test_maildir_fsync_file_eio(self):
        self.maildir_case(['fsync:/mail/bob/tmp/:0:1:EIO'], 'fsync')

    def test_maildir_fsync_new_eio(self):
        self.maildir_case(['fsync:/mail/bob/new$:0:1:EIO'], 'fsync')

    def test_maildir_fsync_new_eio_not_taken_back(self):
        """new/'s fsync fails and the message cannot be taken back out
        of new/ (as when a reader moved it to cur/ meanwhile): it is
        delivered, and its retry must not deliver it a second time."""
        d = self.maildir_case(['fsync:/mail/bob/new$:0:1:EIO',
                               'unlink:/mail/bob/new/:0:1:EIO'], 'unlink')
        self.assertIn('a reader already took the message', d.log_text())

    # ---- a DSN's creation (its own queue commit)

    def dsn_case(self, rule, call):
        """bob is delivered, gone fails: alice's bounce is queued by a
        commit whose step fails once; the bounce still comes, once."""
        def modules(d):
            return [{'module': 'script', 'name': 'outcomes',
                     'deliver': {'gone@localhost': 'failed'}},
                    {'module': 'store_mbox', 'directory': d.maildir,
                     'users': 'any'}]
        d = self.faulty([rule], modules)
        msg = message('bounced@e2e.test', 3000, 'bounced')
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost',
                                             'gone@localhost'], msg)
        self.fired(d, call)
        self.drain(d)
        check_exact(self, mbox_messages(d.mailbox('bob')),
                    {'bounced@e2e.test': msg}, 'bob')
        reports = mbox_messages(d.mailbox('alice'))
        self.assertEqual(len(reports), 1, 'one bounce to alice')
        report = email.message_from_bytes(reports[0].partition(b'\n')[2])
        self.assertEqual(report.get_content_type(), 'multipart/report')
        parts = [p.get_content_type() for p in report.get_payload()]
        self.assertEqual(parts[:2], ['text/plain',
                                     'message/delivery-status'], parts)
        self.assertIn(b'gone@localhost', reports[0])
        # the original's headers, quoted whole in the third part
        self.assertIn(b'Message-ID: <bounced@e2e.test>', reports[0])

    def test_dsn_then_envelope_update_fails(self):
        """The bounce is queued, then the envelope that records it (and
        bob's delivery) cannot be written."""
        self.dsn_case('write:.u:0:2:EIO', 'write')

    def test_dsn_write_eio(self):
        # the original's content is the first write to tmp/
        self.dsn_case('write:/spool/tmp/:1:1:EIO', 'write')

    def test_dsn_write_short(self):
        self.dsn_case('write:/spool/tmp/:1:20:short', 'write')

    def test_dsn_create_enospc(self):
        # the original's content file is the first created in tmp/
        self.dsn_case('openat:.msg$:1:1:ENOSPC', 'openat')

    def test_dsn_fsync_eio(self):
        self.dsn_case('fsync:/spool/tmp/:1:1:EIO', 'fsync')

    def test_dsn_rename_eio(self):
        self.dsn_case('rename:.msg$:1:1:EIO', 'rename')

    def test_dsn_xattr_eio(self):
        self.dsn_case('fsetxattr:/spool/tmp/:1:1:EIO', 'fsetxattr')

    # ---- the listener

    def test_accept_out_of_descriptors(self):
        """accept() failing with EMFILE (the start's probe meets 20 of
        them, 100 ms apart) is logged once, not 20 times, and the client
        waiting in the backlog is served when it works again."""
        d = self.faulty(['accept4:socket:0:20:EMFILE'])
        log = d.log_text()
        self.assertEqual(log.count('faultinject: accept4 '), 20, log)
        self.assertEqual(log.count('accept: listener smtp: Too many open '
                                   'files (descriptor limit'), 1, log)
        with smtp(d.port()) as s:
            send_mail(s, 'alice@localhost', ['bob@localhost'],
                      message('after-emfile@e2e.test', 300, 'x'))
        wait_for(lambda: len(mbox_messages(d.mailbox('bob'))) == 1,
                 what='the message in the mailbox')


if __name__ == '__main__':
    harness.main()
