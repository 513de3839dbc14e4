"""The out-of-tree hello module inside the installed daemon, over SMTP.

Run by test_out_of_tree.sh with MODMTA, MODMTACTL and MODULE_DIR naming
the installed daemon and moduledir, and HELLO_DIR the directory holding
the hello.so built against the installed SDK. Uses the e2e harness
(loopback ports, loopback-only DNS, temp dirs).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'e2e'))

import harness  # noqa: E402

HELLO_DIR = os.environ.get('HELLO_DIR', '')


class HelloTest(harness.TestCase):

    def hello_daemon(self):
        d = harness.Daemon(os.path.join(self.tmp, 'd'))
        d.overrides = {
            'module_path': [HELLO_DIR, harness.MODULE_DIR],
            'modules': [
                {'module': 'hello', 'greeting': 'Hi from the SDK test',
                 'reject_domains': ['spam.test']},
                {'module': 'store_mbox', 'directory': d.maildir,
                 'users': 'any'},
            ],
        }
        self._daemons.append(d)
        return d.start()

    def test_header_reject_and_log(self):
        d = self.hello_daemon()
        s = harness.smtp(d.port())
        try:
            s.ehlo('client.test')
            code, _ = s.mail('alice@localhost')
            self.assertEqual(code, 250)
            code, text = s.rcpt('mallory@spam.test')
            self.assertEqual(code, 550)
            self.assertTrue(text.startswith(b'5.7.1 '), text)
            self.assertIn(b'refused here', text)
            code, _ = s.rcpt('bob@localhost')
            self.assertEqual(code, 250)
            code, text = s.data(harness.make_message('hello-1@sdk.test'))
            self.assertEqual(code, 250, text)
            s.quit()
        finally:
            s.close()
        msgs = d.wait_messages('bob', 1)
        self.assertEqual(harness.header(msgs[0], 'X-Hello'),
                         ['Hi from the SDK test'])
        # The disconnect line comes from hello's per-session data.
        harness.wait_for(lambda: 'helo=client.test rejected=1'
                         in d.log_text(), what='the disconnect log line')
        log = d.log_text()
        self.assertIn('connect client=127.0.0.1', log)
        self.assertIn('reject rcpt=<mallory@spam.test>', log)


if __name__ == '__main__':
    harness.need_env()
    if not HELLO_DIR:
        sys.exit('test_hello_smtp: set HELLO_DIR')
    harness.unittest.main(verbosity=2)
