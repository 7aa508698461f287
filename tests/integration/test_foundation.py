"""The foundation against test:///default: endpoints, errors, limits, auth, options."""
import hashlib
import json
import os
import subprocess
import time

import pytest

from conftest import BIN, Daemon
from helpers import problem, raw


def test_health_ready_version(vv_test):
    c = vv_test.client
    assert c.get('/healthz').json == {'status': 'ok'}
    r = c.get('/readyz')
    assert r.status == 200 and r.json['checks'] == {'libvirt': True, 'database': True}
    v = c.get('/v1/version').json
    assert v['virtvault'] == '0.1.0'
    assert v['libvirt']['connected'] is True
    assert v['libvirt']['driver'].lower() == 'test'
    assert v['libvirt']['uri'] == 'test:///default'
    assert v['libvirt']['library'].count('.') == 2


def test_domains_on_the_test_driver(vv_test):
    c = vv_test.client
    items = c.get('/v1/domains').json['items']
    assert [d['name'] for d in items] == ['test']
    d = items[0]
    assert d['state'] == 'running' and d['persistent'] is True
    assert d['disks'][0]['target'] == 'vda'
    assert d['supports']['snapshots']['supported'] is True
    assert d['supports']['push_backup'] == {
        'supported': False, 'reason': 'the libvirt test driver has no backup API'}
    by_uuid = c.get(f"/v1/domains/{d['uuid']}").json
    assert by_uuid == d
    problem(c.get('/v1/domains/nope'), 404, 'not_found')
    problem(c.get('/v1/domains/%3Cscript%3E'), 404, 'not_found')


def test_openapi_and_metrics(vv_test):
    c = vv_test.client
    r = c.get('/openapi.yaml')
    assert r.status == 200 and r.text.startswith('openapi: 3.1')
    with open(os.path.join(os.path.dirname(__file__), '..', '..', 'openapi.yaml')) as f:
        assert r.text == f.read(), 'the served spec is the one in the repository'
    c.get('/v1/domains')
    c.get('/v1/domains/missing')
    m = c.get('/metrics').text
    assert 'virtvault_up 1' in m
    assert 'virtvault_libvirt_connected 1' in m
    assert 'virtvault_http_requests_total{method="GET",route="/v1/domains",status="200"} 1' in m
    assert ('virtvault_http_requests_total{method="GET",route="/v1/domains/{domain}",'
            'status="404"} 1') in m
    assert 'virtvault_http_request_duration_seconds_bucket{le="+Inf"}' in m


def test_web_ui_is_served(vv_test):
    c = vv_test.client
    r = c.get('/', validate=False)
    assert r.status == 200 and r.content_type.startswith('text/html')
    problem(c.get('/../../etc/passwd', validate=False), 404, 'not_found')
    problem(c.get('/%2e%2e/%2e%2e/etc/passwd', validate=False), 404, 'not_found')
    problem(c.get('/.hidden', validate=False), 404, 'not_found')


@pytest.mark.parametrize('method,path,status,code,allow', [
    ('GET', '/v1/nothing', 404, 'not_found', None),
    ('GET', '/v1/domains/', 404, 'not_found', None),
    ('GET', '/v1/domains/test/extra/deep/path', 404, 'not_found', None),
    ('POST', '/v1/domains', 405, 'method_not_allowed', 'GET, HEAD'),
    ('DELETE', '/v1/domains/test', 405, 'method_not_allowed', 'GET, HEAD'),
    ('PUT', '/healthz', 405, 'method_not_allowed', 'GET, HEAD'),
    ('PATCH', '/v1/version', 405, 'method_not_allowed', 'GET, HEAD'),
    ('GET', '/v1/domains/%zz', 400, 'invalid_request', None),
    ('GET', '/v1/domains/a%00b', 400, 'invalid_request', None),
    ('GET', '/v1/' + 'x' * 9000, 414, 'uri_too_long', None),
])
def test_routing_errors(vv_test, method, path, status, code, allow):
    r = vv_test.client.request(method, path, validate=False)
    problem(r, status, code)
    if allow:
        assert r.headers['allow'] == allow


def test_body_limits_and_types(vv_test):
    c = vv_test.client
    # Announced too large to a client that waits for "100 Continue": refused at once.
    head = (b'POST /v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
            b'Content-Length: 1048577\r\nExpect: 100-continue\r\n\r\n')
    t0 = time.time()
    out = raw(vv_test.port, head)
    assert out.startswith(b'HTTP/1.1 413'), out[:200]
    assert b'payload_too_large' in out
    assert time.time() - t0 < 4, 'answered without waiting for the body'
    # One that sends it anyway gets the answer after it (dropped, never stored).
    out = raw(vv_test.port, head.replace(b'Expect: 100-continue\r\n', b'') +
                      b' ' * 1048577)
    assert out.startswith(b'HTTP/1.1 413'), out[:200]
    # Sent too large in chunks (no Content-Length).
    body = b'{"a":"' + b'x' * (1 << 20) + b'"}'
    chunked = b''.join(b'%x\r\n%s\r\n' % (len(body[i:i + 65536]), body[i:i + 65536])
                       for i in range(0, len(body), 65536)) + b'0\r\n\r\n'
    out = raw(vv_test.port, b'POST /v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                      b'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
                      + chunked)
    assert out.startswith(b'HTTP/1.1 413'), out[:200]
    # Exactly at the limit is not refused for its size (the route says 405 instead).
    r = c.request('POST', '/v1/domains', body=b' ' * (1 << 20),
                  headers={'Content-Type': 'application/json'}, validate=False)
    assert r.status == 405
    # The daemon is still fine.
    assert c.get('/healthz').status == 200


def test_bad_option_values_exit_2(tmp_path):
    for args in (['--bogus'], ['--listen', 'nope'], ['--log-level', 'loud'], ['--threads', '0'],
                 ['--tls-cert', '/x.pem'], ['stray'], ['--max-body', 'big']):
        p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stderr.startswith('virtvaultd: ') and p.stderr.count('\n') == 1, p.stderr
    p = subprocess.run([BIN], capture_output=True, text=True, timeout=10,
                       env={**os.environ, 'VIRTVAULT_LOG_LEVEL': 'chatty'})
    assert p.returncode == 2 and 'VIRTVAULT_LOG_LEVEL' in p.stderr
    p = subprocess.run([BIN, '--version'], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and p.stdout == 'virtvaultd 0.1.0\n'
    p = subprocess.run([BIN, '--help'], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and '--token-file' in p.stdout and '--listen' in p.stdout


def test_no_auth_only_on_loopback(make_daemon):
    d = make_daemon('test:///default')
    for how in (['--no-auth'], []):
        env = {**os.environ, 'VIRTVAULT_NO_AUTH': '1'} if not how else None
        p = subprocess.run(d.command()[:1] + ['--listen', '0.0.0.0:0', '--db', d.db_path,
                                              '--vault-dir', d.vault_dir] + how,
                           capture_output=True, text=True, timeout=10, env=env)
        assert p.returncode == 2, p.stderr
        assert 'loopback' in p.stderr and p.stderr.strip().count('\n') == 0, p.stderr


def test_environment_configures_the_daemon(make_daemon):
    d = make_daemon('test:///default')
    d.env = {'VIRTVAULT_LOG_FORMAT': 'json'}
    d.start()
    d.client.get('/v1/domains')
    lines = [l for l in d.log().splitlines() if l.strip()]
    parsed = [json.loads(l) for l in lines if l.startswith('{')]
    assert parsed and len(parsed) == len(lines), lines[:5]
    assert all({'time', 'level', 'msg'} <= set(p) for p in parsed)


def sha(token):
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def vv_auth(make_daemon, tmp_path):
    tokens = tmp_path / 'tokens'
    tokens.write_text(
        f'# virtvault tokens\n'
        f'sha256:{sha("viewer-secret")} viewer name=dash\n'
        f'sha256:{sha("operator-secret")} operator\n'
        f'sha256:{sha("admin-secret")} admin name=ops\n'
        f'sha256:{sha("expired-secret")} admin expires=2001-01-01T00:00:00Z\n')
    d = make_daemon('test:///default', args=['--token-file', str(tokens)])
    d.start()
    return d


def test_tokens_and_roles(vv_auth):
    c = vv_auth.client
    assert c.get('/healthz').status == 200, 'liveness needs no token'
    assert c.get('/readyz').status == 200
    assert c.get('/openapi.yaml').status == 200
    r = c.get('/v1/domains')
    problem(r, 401, 'unauthorized')
    assert r.headers['www-authenticate'].startswith('Bearer')
    for tok, detail in (('wrong', 'not valid'), ('expired-secret', 'expired')):
        r = c.get('/v1/domains', headers={'Authorization': f'Bearer {tok}'})
        assert detail in problem(r, 401, 'unauthorized')['detail']
    problem(c.get('/v1/domains', headers={'Authorization': 'Basic dXNlcjpwYXNz'}), 401,
            'unauthorized')
    problem(c.get('/v1/domains', headers={'Authorization': f'Bearer {sha("viewer-secret")}'}),
            401, 'unauthorized')
    for tok in ('viewer-secret', 'operator-secret', 'admin-secret'):
        r = c.get('/v1/domains', headers={'Authorization': f'Bearer {tok}'})
        assert r.status == 200, (tok, r)
    log = vv_auth.log()
    for secret in ('viewer-secret', 'operator-secret', 'admin-secret', 'expired-secret', 'wrong'):
        assert secret not in log, 'a token reached the log'


def test_bad_token_file_is_refused(tmp_path):
    bad = tmp_path / 'tokens'
    bad.write_text('plaintext admin\n')
    p = subprocess.run([BIN, '--token-file', str(bad), '--db', str(tmp_path / 'db'),
                        '--vault-dir', str(tmp_path / 'v')], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2 and 'line 1' in p.stderr, p.stderr
    p = subprocess.run([BIN, '--token-file', str(tmp_path / 'missing')], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2 and 'cannot read token file' in p.stderr


def test_corrupt_database_refused(make_daemon, tmp_path):
    d = make_daemon('test:///default')
    d.start()
    d.stop()
    with open(d.db_path, 'r+b') as f:
        f.seek(0)
        f.write(b'\xa5' * 100)
        f.seek(4096)
        f.write(b'\xa5' * 4096)
    for ext in ('-wal', '-shm'):
        if os.path.exists(d.db_path + ext):
            os.unlink(d.db_path + ext)
    p = subprocess.run(d.command(), capture_output=True, text=True, timeout=20)
    assert p.returncode == 1
    assert 'cannot start' in p.stderr and d.db_path in p.stderr, p.stderr


def test_sigterm_finishes_cleanly(make_daemon):
    d = make_daemon('test:///default')
    d.start()
    assert d.client.get('/v1/domains').status == 200
    assert d.stop() == 0
    assert 'stopped' in d.log()


def test_many_concurrent_requests(vv_test):
    import concurrent.futures
    c = vv_test.client

    def one(i):
        return c.get('/v1/domains' if i % 2 else '/v1/domains/test', validate=False).status
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        statuses = list(ex.map(one, range(400)))
    assert statuses == [200] * 400
