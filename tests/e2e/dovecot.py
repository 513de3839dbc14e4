"""A throwaway Dovecot (dovecot-core, dovecot-lmtpd) as an LMTP server for
tests: its own base_dir, state_dir and log under a test dir, no TLS, a
passwd-file of users (uid and gid nobody, password PASSWORD), maildir
under each user's home, LMTP on a UNIX socket (mode 0666) and, if asked,
on a loopback port. Users are looked up without their domain
(bob@dove.test is bob).

    dc = Dovecot(directory, {'bob': HOME, ...}, inet_port=PORT).start()
    dc.maildir_messages('bob')      # [bytes] in Maildir/new, oldest first
    dc.stop()

As a reader of Maildirs modmta writes (dovecot-imapd, dovecot-pop3d):
imap_port and pop3_port add IMAP and POP3 listeners on loopback,
mail_location points at the Maildirs ("maildir:/dir/%n"), and quota
(a Dovecot quota_rule such as "*:bytes=4k:messages=3") turns on its
Maildir++ quota and the IMAP QUOTA extension.

Used by tests/e2e/test_lmtp.py, tests/e2e/test_maildir.py and
modules/deliver_smtp/tests/test_smtpc_dovecot.py.
"""

import glob
import os
import socket
import subprocess
import time

START_TIMEOUT = 20
NOBODY = 65534
PASSWORD = 'x'

CONF = '''base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
listen = 127.0.0.1
protocols = {protocols}
default_login_user = nobody
default_internal_user = nobody
first_valid_uid = 1
disable_plaintext_auth = no
mail_location = {mail_location}
auth_username_format = %Ln
# only the headers RFC 2033 delivery needs: Return-Path, Delivered-To
lmtp_add_received_header = no
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
}}
service lmtp {{
  unix_listener {d}/lmtp {{
    mode = 0666
  }}
{inet}}}
{readers}'''

INET = '''  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
'''


# a reader's login service: its listener on loopback, the TLS one off
LOGIN = '''service {proto}-login {{
  inet_listener {proto} {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener {proto}s {{
    port = 0
  }}
}}
'''

QUOTA = '''mail_plugins = $mail_plugins quota
protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = maildir:User quota
  quota_rule = {rule}
}}
'''


class Dovecot:
    """users: name -> home directory (Dovecot creates what is missing
    where nobody may write)."""

    def __init__(self, directory, users, inet_port=None, wrap=None,
                 imap_port=None, pop3_port=None,
                 mail_location='maildir:~/Maildir', quota=None):
        self.dir = directory
        self.users = users
        self.inet_port = inet_port
        self.imap_port = imap_port
        self.pop3_port = pop3_port
        self.wrap = wrap or (lambda argv: argv)
        self.socket = os.path.join(directory, 'lmtp')
        self.conf = os.path.join(directory, 'dovecot.conf')
        self.proc = None
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, 'users'), 'w') as f:
            for name, home in users.items():
                f.write('%s:{PLAIN}%s:%d:%d::%s::\n'
                        % (name, PASSWORD, NOBODY, NOBODY, home))
        inet = INET.format(port=inet_port) if inet_port else ''
        protocols = ['lmtp']
        readers = ''
        for proto, port in (('imap', imap_port), ('pop3', pop3_port)):
            if port:
                protocols.append(proto)
                readers += LOGIN.format(proto=proto, port=port)
        if quota:
            readers += QUOTA.format(rule=quota)
        with open(self.conf, 'w') as f:
            f.write(CONF.format(d=directory, inet=inet, readers=readers,
                                protocols=' '.join(protocols),
                                mail_location=mail_location))

    def start(self):
        """Start; return once both listeners accept connections."""
        self.proc = subprocess.Popen(
            self.wrap(['dovecot', '-F', '-c', self.conf]),
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.accepting():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError('dovecot did not start: %s'
                                     % self.log())
            time.sleep(0.05)
        return self

    def accepting(self):
        targets = [(socket.AF_UNIX, self.socket)]
        for port in (self.inet_port, self.imap_port, self.pop3_port):
            if port:
                targets.append((socket.AF_INET, ('127.0.0.1', port)))
        for family, addr in targets:
            s = socket.socket(family, socket.SOCK_STREAM)
            try:
                s.settimeout(5)
                s.connect(addr)
            except OSError:
                return False
            finally:
                s.close()
        return True

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        proc.wait(30)

    def log(self):
        try:
            with open(os.path.join(self.dir, 'dovecot.log'),
                      errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def maildir_messages(self, user):
        """The messages in user's Maildir/new, oldest first (Dovecot's
        file names start with the delivery time)."""
        home = self.users[user]
        out = []
        for path in sorted(glob.glob(os.path.join(home, 'Maildir', 'new',
                                                  '*'))):
            with open(path, 'rb') as f:
                out.append(f.read())
        return out
