"""Redis for end-to-end tests, each process the test's own, with no
persistence (a restart starts empty); redis-cli (redis-tools) reads and
writes keys.

RedisServer: a redis-server on a UNIX socket in the test's directory (no
port to race for), or on a free loopback port with tcp=True (what a
replica and sentinels need), optionally a replica of another.
Sentinel: a redis-sentinel (redis-server --sentinel) watching a master."""

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
    """redis-server `name` in directory; start() waits until it answers
    PING. With tcp, it listens on a free port of 127.0.0.1 (picked again
    if it turns out taken); replicaof: a RedisServer (tcp) to follow."""

    def __init__(self, directory, name='redis', tcp=False, replicaof=None):
        self.dir = directory
        self.name = name
        os.makedirs(directory, exist_ok=True)
        self.socket = None if tcp else os.path.join(directory,
                                                    name + '.sock')
        self.port = None
        self.replicaof = replicaof
        self.logpath = os.path.join(directory, name + '.log')
        self.proc = None

    @property
    def address(self):
        """As the daemons' config writes it: the socket, or IP:port."""
        return self.socket or '127.0.0.1:%d' % self.port

    def config(self, **extra):
        """The daemons' "redis" section for this server."""
        cfg = {'address': self.address}
        cfg.update(extra)
        return cfg

    def argv(self):
        """The command line (self.port is set when tcp)."""
        argv = [_find('redis-server'), '--save', '', '--appendonly', 'no',
                '--dir', self.dir, '--logfile', self.logpath]
        if self.socket is not None:
            return argv + ['--port', '0', '--unixsocket', self.socket,
                           '--unixsocketperm', '700']
        argv += ['--port', str(self.port), '--bind', '127.0.0.1']
        if self.replicaof is not None:
            argv += ['--replicaof', '127.0.0.1', str(self.replicaof.port)]
        return argv

    def start(self):
        """Start (again: on the same port, unless it was taken)."""
        for attempt in range(5):
            if self.socket is None and (self.port is None or attempt > 0):
                self.port = harness.free_port()
            self.proc = subprocess.Popen(self.argv(),
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                harness.wait_for(self._up, timeout=harness.START_TIMEOUT,
                                 what='%s to answer PING' % self.name)
                break
            except _PortTaken:
                if attempt == 4:
                    raise AssertionError('%s: no free port' % self.name)
        if self.replicaof is not None:
            harness.wait_for(lambda: 'master_link_status:up' in
                             (self.cli('INFO', 'replication') or ''),
                             timeout=harness.START_TIMEOUT,
                             what='%s to replicate %s'
                             % (self.name, self.replicaof.name))
        return self

    def _up(self):
        if self.proc.poll() is not None:
            log = harness.read_text(self.logpath)
            self.proc = None
            if self.socket is None and 'Address already in use' in log:
                raise _PortTaken()
            raise AssertionError('%s exited: %s' % (self.name, log))
        return self.cli('PING') == 'PONG'

    def stop(self, kill=False):
        """SIGTERM (SIGKILL after STOP_TIMEOUT); kill: SIGKILL at once,
        as a crash or a power cut would."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(harness.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cli(self, *args):
        """redis-cli's answer to one command, stripped ('' for nil, an
        array's elements one a line), or None when it cannot connect."""
        if self.socket is not None:
            if not os.path.exists(self.socket):
                return None
            where = ['-s', self.socket]
        else:
            where = ['-h', '127.0.0.1', '-p', str(self.port)]
        r = subprocess.run([_find('redis-cli')] + where + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None


class _PortTaken(Exception):
    """The picked port was taken between the check and the bind."""


class Sentinel(RedisServer):
    """A sentinel on a free loopback port watching `master` (a
    RedisServer on tcp) under `master_name`, with quorum 2. down_after
    and failover_timeout in milliseconds (Sentinel's down-after-
    milliseconds and failover-timeout)."""

    def __init__(self, directory, name, master, master_name='mymaster',
                 down_after=1000, failover_timeout=3000):
        super().__init__(directory, name, tcp=True)
        self.master = master
        self.master_name = master_name
        self.down_after = down_after
        self.failover_timeout = failover_timeout
        self.conf = os.path.join(directory, name + '.conf')

    def argv(self):
        # written at each start (the port may change); sentinels rewrite
        # their file, so it must be writable
        with open(self.conf, 'w') as f:
            f.write('port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n'
                    'sentinel monitor %s 127.0.0.1 %d 2\n'
                    'sentinel down-after-milliseconds %s %d\n'
                    'sentinel failover-timeout %s %d\n'
                    % (self.port, self.dir, self.logpath,
                       self.master_name, self.master.port,
                       self.master_name, self.down_after,
                       self.master_name, self.failover_timeout))
        return [_find('redis-server'), self.conf, '--sentinel']

    def master_port(self):
        """The master's port as this sentinel says, or None."""
        r = self.cli('SENTINEL', 'get-master-addr-by-name',
                     self.master_name)
        lines = (r or '').split('\n')
        if len(lines) != 2 or lines[0] != '127.0.0.1':
            return None
        return int(lines[1])

    def sees(self, replicas, sentinels):
        """True once the master is ok and this sentinel knows that many
        replicas and sentinels (itself included)."""
        info = self.cli('INFO', 'sentinel') or ''
        return ('status=ok' in info and 'slaves=%d,sentinels=%d'
                % (replicas, sentinels) in info)


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
