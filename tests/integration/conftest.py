"""Fixtures for integration tests: the real daemon, on a free port, with its
own SQLite file and vault, against test:///default or the sandbox's QEMU.

    def test_x(vv_test):            # daemon on test:///default
        r = vv_test.client.get('/v1/domains')

    def test_y(vv_qemu, qemu_domain):   # daemon on qemu:///system + a fresh running domain
        r = vv_qemu.client.get(f'/v1/domains/{qemu_domain}')

Daemons run with --no-auth on loopback unless given --token-file or
no_auth=False (then the daemon makes its own admin token on first start and
the client sends it).

The binary is $VIRTVAULT_BIN (default build/virtvaultd). A daemon built with
sanitizers fails the test that ran it when it reports anything.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from client import Client, ROOT  # noqa: E402
from helpers import free_port, qemu_pid  # noqa: E402,F401  (tests import free_port from here too)

BIN = os.environ.get('VIRTVAULT_BIN', os.path.join(ROOT, 'build', 'virtvaultd'))
SANITIZER_MARKS = ('ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:',
                   'SUMMARY: UndefinedBehaviorSanitizer')


class Daemon:
    """One virtvaultd process and the files it owns."""

    def __init__(self, uri='test:///default', args=(), env=None, workdir=None, token=None,
                 scheme='http', no_auth=True):
        self.uri = uri
        self.args = list(args)
        self.env = dict(env or {})
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix='vv-it-')
        self.db_path = os.path.join(self.dir, 'virtvault.db')
        self.vault_dir = os.path.join(self.dir, 'vault')
        self.log_path = os.path.join(self.dir, 'daemon.log')
        self.port = free_port()
        self.scheme = scheme
        self.proc = None
        self._token = token
        self.no_auth = no_auth and '--token-file' not in self.args
        self.sanitizer_reports = []

    @property
    def token(self):
        """The token the client sends: the one given, else the one made on first start."""
        if self._token is None and not self.no_auth:
            try:
                with open(os.path.join(self.dir, 'admin-token')) as f:
                    return f.read().strip()
            except OSError:
                return None
        return self._token

    @token.setter
    def token(self, value):
        self._token = value

    @property
    def url(self):
        return f'{self.scheme}://127.0.0.1:{self.port}'

    @property
    def client(self):
        return Client(self.url, token=self.token)

    def command(self):
        return [BIN, '--listen', f'127.0.0.1:{self.port}', '--libvirt-uri', self.uri,
                '--db', self.db_path, '--vault-dir', self.vault_dir,
                '--web-dir', os.path.join(ROOT, 'web'), '--log-level', 'debug'] + \
            (['--no-auth'] if self.no_auth else []) + self.args

    def start(self, wait=True):
        env = dict(os.environ)
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=0:halt_on_error=1')
        env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1')
        env.setdefault('LSAN_OPTIONS', f'suppressions={os.path.join(ROOT, "tests", "lsan.supp")}'
                                       ':print_suppressions=0')
        env.update(self.env)
        self.log_file = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(self.command(), stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f'virtvaultd exited with {self.proc.returncode}:\n{self.log()}')
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    pass
                if self.client.get('/healthz', validate=False).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f'virtvaultd did not come up:\n{self.log()}')

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.client.get('/readyz', validate=False).status == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f'virtvaultd not ready after {timeout}s:\n{self.log()}')

    def log(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')[-20000:]
        except OSError:
            return ''

    def _collect_sanitizer(self):
        text = self.log()
        for mark in SANITIZER_MARKS:
            if mark in text:
                self.sanitizer_reports.append(text)
                break

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stops the daemon; returns its exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f'virtvaultd did not stop within {timeout}s:\n{self.log()}')
        self.log_file.close()
        self._collect_sanitizer()
        return self.proc.returncode

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.log_file.close()

    def restart(self):
        self.stop()
        self.start()
        return self

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def _finish(d):
    code = d.stop()
    reports = d.sanitizer_reports
    log_tail = d.log()[-6000:] if code not in (0, None) else ''
    d.cleanup()
    assert not reports, 'sanitizer report from virtvaultd:\n' + reports[0][-8000:]
    assert code in (0, None), f'virtvaultd exited with {code}; its log ends:\n' + log_tail


@pytest.fixture
def vv_test():
    d = Daemon('test:///default').start()
    yield d
    _finish(d)


@pytest.fixture
def make_daemon():
    """Factory for daemons with custom settings; all are stopped and checked at the end."""
    made = []

    def make(*a, **kw):
        d = Daemon(*a, **kw)
        made.append(d)
        return d
    yield make
    for d in made:
        _finish(d)


@pytest.fixture(scope='session')
def sandbox():
    import sandbox as sb
    sb.up()
    return sb


@pytest.fixture
def vv_qemu(sandbox):
    d = Daemon('qemu:///system').start()
    d.wait_ready()
    yield d
    _finish(d)


@pytest.fixture
def qemu_domain(sandbox):
    name = 'vvt-' + uuid.uuid4().hex[:8]
    sandbox.domain_create(name)
    yield name
    sandbox.domain_remove(name)


@pytest.fixture
def held_qemu(vv_qemu, qemu_domain):
    """The domain's QEMU, with one checkpoint to reconcile: (stop, cont). stop() holds every
    reconcile (SIGSTOP) until cont() or the test's end."""
    r = vv_qemu.client.post(f'/v1/domains/{qemu_domain}/checkpoints', json={'name': 'cp1'})
    assert r.status == 201, r
    pid = qemu_pid(qemu_domain)
    stopped = False

    def stop():
        nonlocal stopped
        os.kill(pid, signal.SIGSTOP)
        stopped = True

    def cont():
        nonlocal stopped
        if stopped:
            os.kill(pid, signal.SIGCONT)
            stopped = False
    try:
        yield stop, cont
    finally:
        cont()


@pytest.fixture(scope='session')
def objstore():
    """One Ceph cluster with a RADOS Gateway (S3) for the whole run (tests/integration/objstore.py);
    started on first use, removed at the end."""
    import objstore as os3
    cluster = os3.Cluster()
    yield cluster
    cluster.down()


@pytest.fixture
def objstore_bucket(objstore):
    """A user and a bucket of this test's own on the run's object store."""
    return objstore.bucket()
