"""The header_checks plugin (plugins/header_checks) through the real
daemon: a REJECT by Subject at the end of DATA, a body_checks REJECT, a
HOLD shown by `modmtactl queue` and delivered by `modmtactl release`, a
REPLACE seen in the delivered message, and a rule file replaced while
the daemon runs taking effect (polled: the file is looked at at most
once a second).

The plugin is found in PLUGIN_DIR (the build's plugins/, or, from
tests/sdk/test_plugins_out_of_tree.sh, the plugin built out of tree).
"""

import os

import harness
from harness import header, make_message, send_mail, smtp, wait_for

PLUGIN_DIR = os.environ.get('PLUGIN_DIR', '')

HEADER_RULES = r"""# Postfix header_checks, unchanged
/^Subject: .*make money fast/   REJECT 5.7.1 No spam here
/^Subject: hold me/             HOLD held by policy
/^Subject: (.*)\[SPAM\](.*)/    REPLACE Subject: ${1}${2}
"""
BODY_RULES = r"""/^<iframe src=(3D)?cid:.* height=(3D)?0 width=(3D)?0>$/
    REJECT IFRAME vulnerability exploit
"""


class HeaderChecks(harness.TestCase):

    def checked(self):
        d = self.daemon(start=False)
        self.hpath = os.path.join(self.tmp, 'header_checks')
        bpath = os.path.join(self.tmp, 'body_checks')
        with open(self.hpath, 'w') as f:
            f.write(HEADER_RULES)
        with open(bpath, 'w') as f:
            f.write(BODY_RULES)
        d.overrides['module_path'] = [PLUGIN_DIR, harness.MODULE_DIR]
        d.overrides['modules'] = [
            {'module': 'header_checks', 'header_checks': self.hpath,
             'body_checks': bpath},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        return d.start()

    def data(self, d, msg):
        with smtp(d.port()) as s:
            s.ehlo()
            self.assertEqual(s.mail('alice@remote.test')[0], 250)
            self.assertEqual(s.rcpt('bob@localhost')[0], 250)
            code, text = s.data(msg)
            return code, text.decode()

    def test_reject_replace_and_body(self):
        d = self.checked()
        code, text = self.data(d, make_message('m1@e2e.test',
                                               subject='Make Money Fast!'))
        self.assertEqual((code, text), (550, '5.7.1 No spam here'))
        code, text = self.data(d, make_message(
            'm2@e2e.test', body='hi\r\n<iframe src=3Dcid:x height=3D0 '
            'width=3D0>\r\nbye\r\n'))
        self.assertEqual((code, text),
                         (550, '5.7.1 IFRAME vulnerability exploit'))
        code, text = self.data(d, make_message('m3@e2e.test',
                                               subject='cheap [SPAM] pills'))
        self.assertEqual(code, 250, text)
        m = d.wait_messages('bob', 1)[0]
        self.assertEqual(header(m, 'Subject'), ['cheap  pills'])
        self.assertIn('REJECT: header Subject: Make Money Fast!',
                      d.log_text())

    def test_hold_then_release(self):
        d = self.checked()
        with smtp(d.port()) as s:
            qid = send_mail(s, 'alice@remote.test', ['bob@localhost'],
                            make_message('h1@e2e.test', subject='hold me'))
            send_mail(s, 'alice@remote.test', ['bob@localhost'],
                      make_message('h2@e2e.test', subject='plain'))
        wait_for(lambda: d.queue_ids() == {qid},
                 what='only the held message in the queue')
        r = d.ctl('queue')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(qid, r.stdout)
        self.assertIn('quarantined: held by policy', r.stdout)
        self.assertEqual(len(d.wait_messages('bob', 1)), 1)
        r = d.ctl('release', qid)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        msgs = d.wait_messages('bob', 2)
        self.assertIn(['<h1@e2e.test>'],
                      [header(m, 'Message-ID') for m in msgs])

    def test_rules_edited_while_running(self):
        d = self.checked()
        msg = make_message('r1@e2e.test', subject='quarterly report')
        self.assertEqual(self.data(d, msg)[0], 250)
        tmp = self.hpath + '.new'
        with open(tmp, 'w') as f:
            f.write(HEADER_RULES + '/^Subject: quarterly/ REJECT no reports\n')
        os.rename(tmp, self.hpath)
        wait_for(lambda: self.data(d, msg) == (550, '5.7.1 no reports'),
                 what='the new rule in force')
        # a broken edit keeps the rules in service, with a warning (the
        # file is looked at when a message needs it)
        with open(tmp, 'w') as f:
            f.write('/^Subject: (/ REJECT\n')
        os.rename(tmp, self.hpath)

        def warned():
            self.assertEqual(self.data(d, msg), (550, '5.7.1 no reports'))
            return 'header_checks:1: bad regular expression' in d.log_text()
        wait_for(warned, what='the warning about the broken file')


if __name__ == '__main__':
    harness.main()
