"""Helpers shared by the integration tests and the benchmarks, defined once.

Tests import them by name (`from helpers import virsh, disk_path`); the benchmarks in bench/
put tests/integration on sys.path first. Nothing here needs pytest or a running daemon.

    virsh(*args, check=True)      virsh -q on qemu:///system; CompletedProcess
    checkpoints(dom)              checkpoint names libvirt lists for dom
    domain_state(dom)             'running', 'shut off', ...
    disk_path(dom, disk='vda')    the image file behind a disk target
    keep(dom, size, path)         the guest-visible vda, as it is now, into a raw file
    same_disk(image, raw)         asserts qemu-img compare finds them equal
    fill_disk(dom, size, data, workdir)  random data into a stopped domain's image
    prefilled_domain(sandbox, size, data)  a context: a running domain, vda's start filled
    problem(r, status, code=None) asserts an application/problem+json answer
    wait_for(what, fn, ...)       polls fn until truthy, returns its value
    raw(port, data, timeout=5)    bytes in, everything read until close or timeout out
    free_port()                   a free loopback TCP port
    size_arg(s)                   '64M' -> bytes, for command lines
    qemu_pid(dom)                 the pid of the domain's QEMU process
    metric(text, name, labels='') a sample of a Prometheus text, or None
    unix_request(sock, method, url, body=None, headers=None)  (status, headers, body) over a
                                  Unix socket; unix_get(sock, url, headers) -> (status, body)
    as_user(uid, gid, fn)         fn() in a child process as uid:gid; what it returned, as repr
"""
import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX = os.path.join(ROOT, 'scripts', 'sandbox')
QEMU_URI = 'qemu:///system'
MiB = 1 << 20


def virsh(*args, check=True):
    """Runs virsh -q against the sandbox's libvirtd. With check, a failure raises an
    AssertionError that carries virsh's own message."""
    p = subprocess.run(['virsh', '-q', '-c', QEMU_URI, *args], capture_output=True, text=True,
                       timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f'virsh {" ".join(args)} failed: {p.stderr.strip()}')
    return p


def checkpoints(dom):
    """The names of the checkpoints libvirt lists for dom, in its order."""
    return virsh('checkpoint-list', dom, '--name').stdout.split()


def domain_state(dom):
    """The domain's state as virsh words it: 'running', 'shut off', ..."""
    return virsh('domstate', dom).stdout.strip()


def disk_path(dom, disk='vda'):
    """The source file of the domain's disk with target `disk`."""
    out = virsh('domblklist', dom).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == disk:
            return parts[1]
    raise AssertionError(f'{dom} has no disk {disk}: {out}')


def keep(dom, size, path):
    """The guest-visible disk vda of dom, as it is now, into the raw file path."""
    subprocess.run([SANDBOX, 'read', dom, '0', str(size), path], check=True,
                   capture_output=True)


def same_disk(image, expected_raw):
    """Asserts that the image (any format) holds the same bytes as the raw file."""
    p = subprocess.run(['qemu-img', 'compare', '-F', 'raw', image, expected_raw],
                       capture_output=True, text=True)
    assert p.returncode == 0, f'{image} differs from {expected_raw}: {p.stdout}{p.stderr}'


def fill_disk(dom, disk_size, data, workdir):
    """Random data into the (stopped) domain's image: `data` bytes from offset 0."""
    raw_file = os.path.join(workdir, 'fill.raw')
    with open(raw_file, 'wb') as f:
        f.truncate(disk_size)
        left = data
        while left > 0:
            n = min(left, 64 * MiB)
            f.write(os.urandom(n))
            left -= n
    img = disk_path(dom)
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', '-o', 'compat=1.1',
                    raw_file, img + '.new'], check=True)
    os.replace(img + '.new', img)
    os.unlink(raw_file)


PIECE = 8 * 1024 * 1024


def piece_digests(path):
    """The SHA-256 of each 8 MiB piece of the file at path, in file order (the last shorter)."""
    out = []
    with open(path, 'rb') as f:
        while piece := f.read(PIECE):
            out.append(hashlib.sha256(piece).digest())
    return out


def file_checksum(path, algorithm):
    """What virtvault records for the file at path under algorithm, computed independently:
    'sha256' is the whole file's SHA-256, 'sha256-pieces-8MiB' the SHA-256 of the pieces'
    digests concatenated."""
    if algorithm == 'sha256':
        with open(path, 'rb') as f:
            return hashlib.file_digest(f, 'sha256').hexdigest()
    assert algorithm == 'sha256-pieces-8MiB', algorithm
    return hashlib.sha256(b''.join(piece_digests(path))).hexdigest()


def prefilled_domain(sandbox, size, data, pattern='0x5a'):
    """A context: a domain whose vda holds `data` bytes of pattern from offset 0, written into
    the image before the domain starts (fast, and no bitmap needs to see it)."""
    @contextlib.contextmanager
    def cm():
        with sandbox.domain(size=size, start=False) as name:
            subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                            f'write -P {pattern} 0 {data}', disk_path(name)],
                           check=True, capture_output=True)
            virsh('start', name)
            yield name
    return cm()


def problem(r, status, code=None):
    """Asserts r is an application/problem+json answer with this status (and code, when
    given); returns the problem document."""
    assert r.status == status, r
    assert r.content_type.startswith('application/problem+json'), r.headers
    if code:
        assert r.json['code'] == code, r.json
    assert r.json['status'] == status, r.json
    return r.json


def wait_for(what, fn, timeout=30, interval=0.2):
    """Calls fn until it returns something truthy and returns that; raises an AssertionError
    naming `what` after timeout seconds."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(interval)


def backup(c, dom, **body):
    """Starts a backup of dom with body, waits for its job to succeed and returns the backup."""
    r = c.post(f'/v1/domains/{dom}/backups', json=body)
    assert r.status == 202, r
    job = c.wait_job(r.json['job_id'])
    assert job['state'] == 'succeeded', job
    return c.get(f'/v1/domains/{dom}/backups/{r.json["id"]}').json


def raw(port, data, timeout=5):
    """Sends data to 127.0.0.1:port as it is; returns everything read until the server closes,
    resets, or timeout passes."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
        s.sendall(data)
        out = b''
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, ConnectionResetError):
            pass
    return out


def raw_request(port, method, path, body=None):
    """Sends one request (body: JSON, for a POST) on a new connection to 127.0.0.1:port and
    returns the socket, its answer unread (read it with read_raw or read_answer)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    data = json.dumps(body).encode() if body is not None else b''
    head = f'{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n'
    if method == 'POST':
        head += f'Content-Type: application/json\r\nContent-Length: {len(data)}\r\n'
    s.sendall(head.encode() + b'\r\n' + data)
    return s


def read_raw(s, timeout):
    """Everything the server sends on s until it closes: the status and the raw answer."""
    s.settimeout(timeout)
    data = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    m = re.match(rb'HTTP/1\.1 (\d+)', data)
    assert m, f'no HTTP answer: {data[:200]!r}'
    return int(m.group(1)), data


def read_answer(s, timeout):
    """The status and body of the answer on s (the server closes after it)."""
    status, data = read_raw(s, timeout)
    return status, data.split(b'\r\n\r\n', 1)[1]


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def size_arg(s):
    """'64M', '1.5G', '4096' -> bytes."""
    units = {'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
    s = s.strip().upper()
    if s and s[-1] in units:
        return int(float(s[:-1]) * units[s[-1]])
    return int(s)


def qemu_pid(dom):
    """The pid of the one QEMU process that runs dom."""
    p = subprocess.run(['pgrep', '-f', f'guest={dom},'], capture_output=True, text=True)
    pids = [int(x) for x in p.stdout.split()]
    assert len(pids) == 1, f'expected one QEMU for {dom}: {pids}'
    return pids[0]


def metric(text, name, labels=''):
    """The value of the sample `name{labels}` in a Prometheus text (labels as written there,
    e.g. 'state="running"'), or None when there is none."""
    sample = f'{name}{{{labels}}}' if labels else name
    m = re.search(r'^%s (\S+)$' % re.escape(sample), text, re.M)
    return float(m.group(1)) if m else None


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the Unix socket at path."""

    def __init__(self, path, timeout=10):
        super().__init__('localhost', timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def unix_request(sock, method, url, body=None, headers=None):
    """One request over the Unix socket sock: (status, {lowercase header: value}, body)."""
    c = UnixConnection(sock)
    try:
        c.request(method, url, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def unix_get(sock, url, headers=None):
    """GET url over the Unix socket sock: (status, body)."""
    status, _, body = unix_request(sock, 'GET', url, headers=headers)
    return status, body


def as_user(uid, gid, fn):
    """Runs fn() in a child process as uid:gid (no other groups); returns what it printed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = repr(fn())
        except Exception as e:  # noqa: BLE001 - reported to the parent
            out = repr(('error', type(e).__name__))
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b''
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()


def libvirt_reads_of(vv, backup_id):
    """(domain lookups, domain XML fetches) the daemon counted while it created backup_id."""
    with open(vv.log_path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    m = re.search(rf'backup {backup_id} of \S+ queued; libvirt: (\d+) domain lookups, '
                  rf'(\d+) domain XML fetches', text)
    assert m, f'no count logged for backup {backup_id}'
    return int(m.group(1)), int(m.group(2))
