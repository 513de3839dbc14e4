"""A redis-server of the test's own for end-to-end tests: on a UNIX
socket in the test's directory (no port to race for), no persistence, so
a restart starts empty. redis-cli (redis-tools) reads and writes keys."""

import os
import shutil
import signal
import subprocess

import harness


def _find(name):
    path = shutil.which(name) or os.path.join('/usr/bin', name)
    if not os.access(path, os.X_OK):
        raise AssertionError('%s not found (package %s)'
                             % (name, 'redis-server' if name ==
                                'redis-server' else 'redis-tools'))
    return path


class RedisServer:
    """redis-server in directory; start() waits until it answers PING."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.socket = os.path.join(directory, 'redis.sock')
        self.logpath = os.path.join(directory, 'redis.log')
        self.proc = None

    def config(self, **extra):
        """The daemons' "redis" section for this server."""
        cfg = {'address': self.socket}
        cfg.update(extra)
        return cfg

    def start(self):
        argv = [_find('redis-server'), '--port', '0',
                '--unixsocket', self.socket, '--unixsocketperm', '700',
                '--save', '', '--appendonly', 'no', '--dir', self.dir,
                '--logfile', self.logpath]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError('redis-server exited with %d: %s'
                                     % (self.proc.returncode,
                                        harness.read_text(self.logpath)))
            return self.cli('PING') == 'PONG'
        harness.wait_for(up, timeout=harness.START_TIMEOUT,
                         what='redis-server to answer PING')
        return self

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(harness.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cli(self, *args):
        """redis-cli's answer to one command, stripped ('' for nil)."""
        if not os.path.exists(self.socket):
            return None
        r = subprocess.run([_find('redis-cli'), '-s', self.socket]
                           + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None


class RedisTestCase(harness.TestCase):
    """A test case with self.redis, a RedisServer started for each test
    (its log shown on failure) and stopped after the daemons."""

    def setUp(self):
        super().setUp()
        self.redis = RedisServer(os.path.join(self.tmp, 'redis'))
        self.peer_logs.append(self.redis.logpath)
        self.redis.start()

    def tearDown(self):
        super().tearDown()
        self.redis.stop()
