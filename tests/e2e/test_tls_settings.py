"""TLS settings: certificates chosen by SNI, certificates re-read at
reload, a broken key refused at reload (the old generation serves on),
and the MAIL FROM AUTH= parameter (RFC 4954 section 5) as the envelope
records it."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

import harness
from harness import Raw, make_message, no_verify_context, send_mail, smtp

TEST_MODULE_DIR = os.environ.get('TEST_MODULE_DIR', '')


def make_named_cert(directory, name, cn):
    """name.crt and name.key (EC P-256), self-signed for CN=cn."""
    cert = os.path.join(directory, name + '.crt')
    key = os.path.join(directory, name + '.key')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec',
                    '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                    '-subj', '/CN=' + cn, '-days', '1',
                    '-keyout', key, '-out', cert],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


def der_of(cert):
    with open(cert) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def envelope(d, qid):
    """The stored envelope of a queued message, as JSON."""
    path = [p for p in (os.path.join(d.spool, 'queue', x, qid + '.msg')
                        for x in os.listdir(os.path.join(d.spool, 'queue')))
            if os.path.exists(p)][0]
    env = path[:-4] + '.env'
    if os.path.exists(env):
        with open(env) as f:
            return json.load(f)
    return json.loads(os.getxattr(path, 'user.modmta.env'))


class TLSSettings(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix='modmta-e2e-tls-')
        cls.certs = {}
        for name, cn in (('default', 'localhost'),
                         ('mail', 'mail.example.org'),
                         ('wild', 'any.example.net'),
                         ('fresh', 'fresh.example.org'),
                         ('stray', 'stray.example.org')):
            cls.certs[name] = make_named_cert(cls.certdir, name, cn)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def copy_pair(self, name, to):
        """Copy certs[name] to files of their own (the test overwrites
        them), returned as (cert, key)."""
        cert = os.path.join(self.tmp, to + '.crt')
        key = os.path.join(self.tmp, to + '.key')
        shutil.copyfile(self.certs[name][0], cert)
        shutil.copyfile(self.certs[name][1], key)
        return cert, key

    def sni_daemon(self):
        self.dcert, self.dkey = self.copy_pair('default', 'd')
        self.mcert, self.mkey = self.copy_pair('mail', 'm')
        wcert, wkey = self.certs['wild']
        return self.daemon(
            [{'name': 'smtp', 'tls': 'starttls'},
             {'name': 'smtps', 'tls': 'implicit'}],
            tls={'cert': self.dcert, 'key': self.dkey,
                 'sni': [{'names': ['mail.example.org'],
                          'cert': self.mcert, 'key': self.mkey},
                         {'names': ['*.example.net'],
                          'cert': wcert, 'key': wkey}]})

    def served_cert(self, d, name):
        """DER of the certificate presented at STARTTLS for SNI name
        (None: no SNI)."""
        c = Raw(d.port())
        self.assertReply(c.reply(), 220)
        self.assertReply(c.cmd('EHLO client.test'), 250)
        self.assertReply(c.cmd('STARTTLS'), 220)
        c.sock = no_verify_context().wrap_socket(c.sock,
                                                 server_hostname=name)
        der = c.sock.getpeercert(binary_form=True)
        c.close()
        return der

    def test_sni_selects_certificate(self):
        d = self.sni_daemon()
        want = {None: self.certs['default'][0],
                'mail.example.org': self.certs['mail'][0],
                'MAIL.Example.Org': self.certs['mail'][0],
                'smtp.example.net': self.certs['wild'][0],
                'example.net': self.certs['default'][0],
                'other.example.com': self.certs['default'][0]}
        for name, cert in want.items():
            self.assertEqual(self.served_cert(d, name), der_of(cert),
                             'STARTTLS with SNI %r' % name)

    def test_sni_implicit_tls(self):
        d = self.sni_daemon()
        ctx = no_verify_context()
        for name, cert in (('mail.example.org', self.certs['mail'][0]),
                           ('x.example.net', self.certs['wild'][0])):
            raw = socket.create_connection(('127.0.0.1', d.port('smtps')),
                                           timeout=harness.IO_TIMEOUT)
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                self.assertEqual(s.getpeercert(binary_form=True),
                                 der_of(cert), 'implicit TLS, SNI %r' % name)

    def test_reload_rereads_and_refuses_broken_key(self):
        d = self.sni_daemon()
        self.assertEqual(self.served_cert(d, 'mail.example.org'),
                         der_of(self.certs['mail'][0]))
        # new files under the same names: taken at reload
        shutil.copyfile(self.certs['fresh'][0], self.mcert)
        shutil.copyfile(self.certs['fresh'][1], self.mkey)
        r = d.ctl('reload')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.served_cert(d, 'mail.example.org'),
                         der_of(self.certs['fresh'][0]))
        # a key that does not match: refused, named by its JSON path
        shutil.copyfile(self.certs['stray'][1], self.mkey)
        r = d.ctl('reload')
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('$.tls.sni[0].key', r.stdout + r.stderr)
        self.assertIn('does not match', r.stdout + r.stderr)
        self.assertTrue(d.running())
        self.assertEqual(self.served_cert(d, 'mail.example.org'),
                         der_of(self.certs['fresh'][0]))
        self.assertEqual(self.served_cert(d, None),
                         der_of(self.certs['default'][0]))
        # an unreadable default key: refused too
        os.unlink(self.dkey)
        r = d.ctl('reload')
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('$.tls.key', r.stdout + r.stderr)
        self.assertIn('No such file', r.stdout + r.stderr)
        self.assertEqual(self.served_cert(d, None),
                         der_of(self.certs['default'][0]))

    def test_broken_key_at_start(self):
        cert, key = self.copy_pair('mail', 'm')
        shutil.copyfile(self.certs['stray'][1], key)
        d = self.daemon(start=False, tls={
            'cert': self.certs['default'][0],
            'key': self.certs['default'][1],
            'sni': [{'names': ['mail.example.org'], 'cert': cert,
                     'key': key}]})
        with self.assertRaises(AssertionError) as e:
            d.start()
        self.assertIn('$.tls.sni[0].key', str(e.exception))
        self.assertIn('does not match', str(e.exception))

    # -- MAIL FROM AUTH= (RFC 4954 section 5)

    def auth_param_daemon(self):
        if not TEST_MODULE_DIR:
            self.fail('set TEST_MODULE_DIR (meson test does)')
        passwd = os.path.join(self.tmp, 'passwd')
        with open(passwd, 'w') as f:
            f.write('bob:{PLAIN}pw\n')
        d = self.daemon([{'name': 'smtp', 'tls': 'starttls'}], start=False,
                        tls={'cert': self.certs['default'][0],
                             'key': self.certs['default'][1]})
        d.overrides['module_path'] = [harness.MODULE_DIR, TEST_MODULE_DIR]
        # quarantined: the message stays in the queue with its envelope
        d.overrides['modules'] = [
            {'module': 'auth_sasl', 'passdb': 'file:' + passwd,
             'mechanisms': ['PLAIN']},
            {'module': 'script', 'name': 'hold',
             'milter': {'*': {'quarantine': 'e2e holds it'}}},
            {'module': 'store_mbox', 'directory': d.maildir,
             'users': 'any'}]
        return d.start()

    def test_auth_param_recorded(self):
        d = self.auth_param_daemon()
        with smtp(d.port()) as s:
            s.starttls(context=no_verify_context())
            s.ehlo()
            # not authenticated: the value is not trusted, kept as <>
            anon = send_mail(s, 'a@localhost', ['bob@localhost'],
                             make_message('anon@e2e.test'),
                             mail_options=['AUTH=x+2By@example.org'])
            s.login('bob', 'pw')
            signed = send_mail(s, 'a@localhost', ['bob@localhost'],
                               make_message('auth@e2e.test'),
                               mail_options=['AUTH=x+2By@example.org'])
            none = send_mail(s, 'a@localhost', ['bob@localhost'],
                             make_message('none@e2e.test'))
            empty = send_mail(s, 'a@localhost', ['bob@localhost'],
                              make_message('empty@e2e.test'),
                              mail_options=['AUTH=<>'])
        self.assertEqual(envelope(d, anon).get('auth_param'), '<>')
        self.assertEqual(envelope(d, signed).get('auth_param'),
                         'x+y@example.org')
        self.assertIsNone(envelope(d, none).get('auth_param'))
        self.assertEqual(envelope(d, empty).get('auth_param'), '<>')


if __name__ == '__main__':
    harness.main()
