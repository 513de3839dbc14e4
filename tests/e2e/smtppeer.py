"""A scripted SMTP server for the outbound tests: what a real server
seldom does on request (a 421 greeting, a reply lost after the final
".", a broken TLS handshake, no PIPELINING) on a loopback address.

    peer = SmtpPeer('127.0.0.31', end_of_data='451 4.3.0 try again')
    peer.start()                # peer.stop() in a cleanup
    peer.port, peer.sessions, peer.messages

Each reply is a string (CRLF added; '\\n' separates the lines of a
multi-line reply), or None: close the connection without one. The
EHLO reply lists `extensions`. A message is recorded (envelope and
content) before the reply to its final "." is sent.
"""

import socket
import threading


class SmtpPeer:

    def __init__(self, host, **replies):
        self.host = host
        self.replies = {
            'greeting': '220 peer.test ESMTP scripted',
            'ehlo': None,               # built from extensions
            'helo': '250 peer.test',
            'mail': '250 2.1.0 Ok',
            'rcpt': '250 2.1.5 Ok',
            'data': '354 End data with <CR><LF>.<CR><LF>',
            'end_of_data': '250 2.0.0 Ok: queued',
            'rset': '250 2.0.0 Ok',
            'starttls': '220 2.0.0 Ready to start TLS',
            'quit': '221 2.0.0 Bye',
        }
        self.extensions = ['PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES']
        # recipients taken per transaction; more get "452 4.5.3" (RFC
        # 5321 4.5.3.1.10); None: no limit
        self.max_rcpts = replies.pop('max_rcpts', None)
        self.replies.update(replies)
        self.sessions = 0
        self.messages = []          # (sender, [rcpts], content bytes)
        self.commands = []          # every command line, in order
        self.lock = threading.Lock()
        self.sock = None
        self.port = None

    def start(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except (OSError, AttributeError):
                return
            with self.lock:
                self.sessions += 1
            threading.Thread(target=self._session, args=(conn,),
                             daemon=True).start()

    def _reply(self, f, key):
        text = self.replies[key]
        if key == 'ehlo' and text is None:
            lines = ['peer.test'] + self.extensions
            text = '\n'.join('250%s%s' % ('-' if i < len(lines) - 1
                                          else ' ', l)
                             for i, l in enumerate(lines))
        if text is None:
            return False
        f.write(text.replace('\n', '\r\n').encode() + b'\r\n')
        f.flush()
        return True

    def _session(self, conn):
        f = conn.makefile('rwb')
        try:
            self._converse(f)
        except OSError:
            pass
        finally:
            try:
                f.close()
                conn.close()
            except OSError:
                pass

    def _converse(self, f):
        if not self._reply(f, 'greeting'):
            return
        sender, rcpts = None, []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.rstrip(b'\r\n').decode('utf-8', 'replace')
            with self.lock:
                self.commands.append(cmd)
            verb = cmd.split(' ', 1)[0].upper()
            if verb == 'EHLO':
                key = 'ehlo'
            elif verb == 'HELO':
                key = 'helo'
            elif verb == 'MAIL':
                sender, rcpts, key = cmd, [], 'mail'
            elif verb == 'RCPT':
                if self.max_rcpts is not None and \
                        len(rcpts) >= self.max_rcpts:
                    f.write(b'452 4.5.3 Error: too many recipients\r\n')
                    f.flush()
                    continue
                rcpts.append(cmd)
                key = 'rcpt'
            elif verb == 'RSET':
                sender, rcpts, key = None, [], 'rset'
            elif verb == 'STARTTLS':
                if self._reply(f, 'starttls'):
                    # no TLS here: what follows is not a handshake
                    f.write(b'this is not TLS\r\n')
                    f.flush()
                return
            elif verb == 'QUIT':
                self._reply(f, 'quit')
                return
            elif verb == 'DATA':
                if not self._reply(f, 'data'):
                    return
                content = self._content(f)
                if content is None:
                    return
                with self.lock:
                    self.messages.append((sender, rcpts, content))
                if not self._reply(f, 'end_of_data'):
                    return
                continue
            else:
                f.write(b'502 5.5.2 Error: command not recognized\r\n')
                f.flush()
                continue
            if not self._reply(f, key):
                return

    @staticmethod
    def _content(f):
        lines = []
        while True:
            line = f.readline()
            if not line:
                return None
            if line in (b'.\r\n', b'.\n'):
                return b''.join(lines)
            lines.append(line[1:] if line.startswith(b'.') else line)
