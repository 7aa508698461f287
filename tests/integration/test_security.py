"""Secure by default: a token made on first start, no cross-site or rebinding requests,
authorisation before any body is stored, refused bodies that still get their answer, the
headers of every answer, and the files the service writes kept from others."""
import json
import os
import re
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from client import Client
from conftest import BIN
from helpers import as_user, problem, raw, unix_get


@pytest.fixture
def vv_default(make_daemon):
    """A daemon started as a newcomer would: no --token-file, no --no-auth."""
    return make_daemon('test:///default', no_auth=False).start()


# --- point 1: authentication on by default ---------------------------------------------------

def test_first_start_makes_an_admin_token(vv_default):
    d = vv_default
    tokens, secret = os.path.join(d.dir, 'tokens'), os.path.join(d.dir, 'admin-token')
    for path in (tokens, secret):
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600, (path, oct(st.st_mode))
    token = open(secret).read().strip()
    assert re.fullmatch(r'[0-9a-f]{64}', token)
    assert token not in open(tokens).read(), 'the token file holds hashes only'
    log = d.log()
    assert secret in log, 'the log says where the token is'
    assert token not in log, 'a token reached the log'
    anon = Client(d.url, validate=False)
    problem(anon.get('/v1/domains'), 401, 'unauthorized')
    problem(anon.post('/v1/domains/test/snapshots', json={'name': 'x'}), 401, 'unauthorized')
    assert anon.get('/healthz').status == 200
    assert d.client.get('/v1/domains').status == 200
    # A second start keeps the token of the first.
    d.restart()
    assert open(secret).read().strip() == token
    assert d.client.get('/v1/domains').status == 200
    assert 'first start' not in d.log().split('received SIGTERM')[-1]


def test_token_file_writable_by_others_or_foreign_is_refused(tmp_path):
    tokens = tmp_path / 'tokens'
    tokens.write_text('sha256:' + '0' * 64 + ' admin\n')
    base = [BIN, '--token-file', str(tokens), '--db', str(tmp_path / 'db'),
            '--vault-dir', str(tmp_path / 'v'), '--listen', '127.0.0.1:0']
    for mode in (0o620, 0o602):
        os.chmod(tokens, mode)
        p = subprocess.run(base, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and 'writable by group or others' in p.stderr, p.stderr
        assert p.stderr.count('\n') == 1, p.stderr
    os.chmod(tokens, 0o600)
    os.chown(tokens, 65534, 65534)
    p = subprocess.run(base, capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and 'owned by uid 65534' in p.stderr, p.stderr


def test_service_files_are_not_for_others(vv_default):
    for path in (vv_default.db_path, vv_default.vault_dir):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o027 == 0, (path, oct(mode))


def test_readyz_tells_anonymous_callers_no_uri(make_daemon):
    uri = 'qemu+tcp://127.0.0.1:1/system'
    d = make_daemon(uri, no_auth=False).start()
    anon = Client(d.url, validate=False)
    deadline = time.time() + 20
    while True:
        r = anon.get('/readyz')
        if r.status == 503 or time.time() > deadline:
            break
        time.sleep(0.1)
    problem(r, 503, 'not_ready')
    assert 'qemu' not in r.text and '127.0.0.1:1' not in r.text and d.dir not in r.text, r.text
    r = d.client.get('/readyz', validate=False)
    assert r.status == 503 and uri in r.json['detail'], r.json


# --- point 2: no cross-site or rebinding requests --------------------------------------------

def test_writes_need_json(vv_test):
    c = Client(vv_test.url, validate=False)
    revert = '/v1/domains/test/snapshots/nosuch/revert'
    # What a form on any web page can send.
    for ctype, body in (('application/x-www-form-urlencoded', b''),
                        ('application/x-www-form-urlencoded', b'a=b'),
                        ('text/plain', b'{}'), ('multipart/form-data; boundary=x', b'')):
        r = c.request('POST', revert, body=body, headers={'Content-Type': ctype})
        problem(r, 415, 'unsupported_media_type')
    # An empty POST without any Content-Type.
    conn_r = raw(vv_test.port, f'POST {revert} HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                 'Content-Length: 0\r\nConnection: close\r\n\r\n'.encode())
    assert conn_r.startswith(b'HTTP/1.1 415'), conn_r[:200]
    r = c.request('DELETE', '/v1/domains/test/snapshots/nosuch', body=b'{}',
                  headers={'Content-Type': 'text/plain'})
    problem(r, 415, 'unsupported_media_type')
    # JSON passes on to the route (no such snapshot), an empty DELETE needs no type.
    problem(c.request('POST', revert, body=b'', headers={'Content-Type': 'application/json'}),
            404, 'not_found')
    problem(c.delete('/v1/domains/test/snapshots/nosuch'), 404, 'not_found')


def test_host_must_name_the_service(make_daemon):
    d = make_daemon('test:///default', args=['--allowed-hosts', 'vault.example,Other.Example'])
    d.start()
    c = Client(d.url, validate=False)
    # A name that is not ours: 421 Misdirected Request; one that is no host at all: 400.
    for host in ('evil.example', f'evil.example:{d.port}', 'vault.example.evil', '10.1.2.3'):
        problem(c.get('/v1/domains', headers={'Host': host}), 421, 'misdirected_request')
    for host in ('[::1', 'a:b:c'):
        problem(c.get('/v1/domains', headers={'Host': host}), 400, 'invalid_request')
    for host in (f'127.0.0.1:{d.port}', f'localhost:{d.port}', 'LOCALHOST', '[::1]:80',
                 'vault.example', f'other.example:{d.port}'):
        r = c.get('/v1/domains', headers={'Host': host})
        assert r.status == 200, (host, r)
    # The web UI too: a rebound name gets no page.
    assert c.get('/', headers={'Host': 'evil.example'}).status == 421


def test_cross_origin_requests_are_refused(vv_test):
    c = Client(vv_test.url, validate=False)
    own = f'http://127.0.0.1:{vv_test.port}'
    for origin in ('http://evil.example', 'null', f'https://127.0.0.1:{vv_test.port}',
                   'http://127.0.0.1:1'):
        r = c.post('/v1/domains/test/snapshots', json={'name': 'x'}, headers={'Origin': origin})
        problem(r, 403, 'forbidden')
        problem(c.get('/v1/domains', headers={'Origin': origin}), 403, 'forbidden')
    r = c.get('/v1/domains', headers={'Origin': own})
    assert r.status == 200, r


def test_allowed_hosts_is_an_option_and_a_variable(tmp_path):
    p = subprocess.run([BIN, '--allowed-hosts', 'a b'], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2 and '--allowed-hosts' in p.stderr
    p = subprocess.run([BIN], capture_output=True, text=True, timeout=10,
                       env={**os.environ, 'VIRTVAULT_ALLOWED_HOSTS': 'x/y'})
    assert p.returncode == 2 and 'VIRTVAULT_ALLOWED_HOSTS' in p.stderr
    p = subprocess.run([BIN, '--no-auth', '--token-file', str(tmp_path / 't')],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and 'exclude each other' in p.stderr


# --- point 3 and 11: authorise before buffering; a refused body still gets its answer ---------

def test_refused_before_the_body(vv_default):
    d = vv_default
    # A client that waits for "100 Continue" gets the refusal instead, at once.
    head = (b'POST /v1/domains/test/snapshots HTTP/1.1\r\nHost: 127.0.0.1\r\n'
            b'Content-Type: application/json\r\nContent-Length: 500000\r\n'
            b'Expect: 100-continue\r\n\r\n')
    t0 = time.time()
    out = raw(d.port, head, timeout=3)
    assert out.startswith(b'HTTP/1.1 401'), out[:200]
    assert time.time() - t0 < 2.5


def vm_rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(re.search(r'VmRSS:\s+(\d+)', f.read()).group(1))


def test_anonymous_bodies_are_not_stored(vv_default):
    d = vv_default
    before = vm_rss_kib(d.proc.pid)
    socks = []
    body = b' ' * ((1 << 20) - 1)
    try:
        for _ in range(48):
            s = socket.create_connection(('127.0.0.1', d.port), timeout=10)
            s.sendall(b'POST /v1/domains/test/snapshots HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                      b'Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n' + body)
            socks.append(s)
        # Every body is in (all but its last byte): the daemon has read what it was sent.
        assert Client(d.url).get('/healthz').status == 200
        grown = vm_rss_kib(d.proc.pid) - before
        assert grown < 16 * 1024, f'RSS grew by {grown} KiB for 48 unauthenticated bodies'
    finally:
        for s in socks:
            s.close()


def urllib_post(url, body, headers):
    req = urllib.request.Request(url, data=body, method='POST',
                                 headers={'Content-Type': 'application/json', **headers})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_urllib_sees_the_refusal_of_a_body_it_sends_whole(vv_default):
    d = vv_default
    url = f'{d.url}/v1/domains/test/snapshots'
    auth = {'Authorization': f'Bearer {d.token}'}
    status, body = urllib_post(url, b' ' * (2 << 20), auth)
    assert status == 413 and json.loads(body)['code'] == 'payload_too_large'
    status, body = urllib_post(url, b' ' * (512 << 10), {})
    assert status == 401 and json.loads(body)['code'] == 'unauthorized'
    assert Client(d.url, token=d.token).get('/v1/domains').status == 200


# --- point 9: the headers of every answer ------------------------------------------------------

def test_every_answer_carries_the_security_headers(vv_default):
    d = vv_default
    anon = Client(d.url, validate=False)
    for r in (anon.get('/'), anon.get('/js/app.js'), anon.get('/v1/domains'),
              d.client.get('/v1/domains'), anon.get('/healthz'), anon.get('/nosuch')):
        csp = r.headers.get('content-security-policy', '')
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, r.headers
        assert r.headers.get('referrer-policy') == 'no-referrer', r.headers
        assert r.headers.get('x-content-type-options') == 'nosniff'
        assert 'strict-transport-security' not in r.headers, 'HSTS only under TLS'


# --- point 1: the Unix socket, where the peer's credentials decide ----------------------------

def test_unix_socket_root_and_its_group_are_admin(make_daemon):
    import grp
    group = grp.getgrgid(65534).gr_name  # nogroup
    d = make_daemon('test:///default', no_auth=False)
    os.chmod(d.dir, 0o755)
    sock = os.path.join(d.dir, 'vv.sock')
    d.args += ['--listen', f'unix:{sock}', '--socket-group', group]
    d.start(wait=False)
    deadline = time.time() + 20
    while not os.path.exists(sock):
        assert d.proc.poll() is None and time.time() < deadline, d.log()
        time.sleep(0.05)
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == 65534
    # Root: admin without a token, as on libvirt's own socket.
    status, _ = unix_get(sock, '/v1/domains')
    assert status == 200
    # A member of the socket's group, without a token: admin as well.
    out = as_user(65534, 65534, lambda: unix_get(sock, '/v1/domains')[0])
    assert out == '200', out
    # Anyone else cannot connect at all.
    out = as_user(65534, 65533, lambda: unix_get(sock, '/v1/domains')[0])
    assert 'PermissionError' in out, out
    # A web page cannot reach a socket file, but a browser-like Origin is still refused.
    status, body = unix_get(sock, '/v1/domains', {'Origin': 'http://evil.example'})
    assert status == 403 and json.loads(body)['code'] == 'forbidden'
    assert d.stop() == 0
    assert not os.path.exists(sock), 'the socket is removed at the end'


# --- point 8: event streams are capped ----------------------------------------------------------

def test_event_streams_are_capped_per_token(vv_default):
    d = vv_default
    socks = []
    try:
        for _ in range(8):
            s = socket.create_connection(('127.0.0.1', d.port), timeout=10)
            s.sendall(f'GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                      f'Authorization: Bearer {d.token}\r\n\r\n'.encode())
            head = b''
            while b'\r\n\r\n' not in head:
                chunk = s.recv(4096)
                assert chunk, head
                head += chunk
            assert head.startswith(b'HTTP/1.1 200'), head[:200]
            socks.append(s)
        c = Client(d.url, token=d.token, validate=True, timeout=5)
        p = problem(c.get('/v1/events'), 429, 'too_many_requests')
        assert 'this token' in p['detail']
        assert c.get('/v1/domains').status == 200, 'other requests of the token are served'
    finally:
        for s in socks:
            s.close()
