"""The audit log (issue 14, point 10): every state-changing request is recorded in the
database and as a log line, listed by GET /v1/audit for admins, and kept for
--audit-retention-days."""
import hashlib
import json
import os
import subprocess
import time

import pytest

from client import Client


@pytest.fixture
def vv_auth(make_daemon):
    """A daemon with authentication on and its own admin token (name 'admin')."""
    return make_daemon('test:///default', no_auth=False).start()


def audit(c, query=''):
    r = c.get('/v1/audit' + query)
    assert r.status == 200, r
    return r.json


def add_token(d, role, name):
    """Appends a token of this role to the daemon's token file; returns its text."""
    token = hashlib.sha256(f'{name}-{d.port}'.encode()).hexdigest()
    with open(os.path.join(d.dir, 'tokens'), 'a') as f:
        f.write(f'sha256:{hashlib.sha256(token.encode()).hexdigest()} {role} name={name}\n')
    return token


def log_records(d):
    out = []
    for line in d.log().splitlines():
        i = line.find('audit {')
        if i >= 0:
            out.append(json.loads(line[i + len('audit '):]))
    return out


def test_writes_are_recorded_with_their_fields(vv_auth):
    d = vv_auth
    c = d.client
    since = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() - 1))
    assert audit(c)['items'] == [], 'GET requests are not recorded'

    r = c.post('/v1/domains/test/snapshots', json={'name': 'aud1'})
    assert r.status in (201, 202), r
    job_id = r.json['id'] if r.status == 202 else None
    if job_id:
        c.wait_job(job_id)
    anon = Client(d.url, validate=False)
    assert anon.post('/v1/domains/test/snapshots', json={'name': 'x'}).status == 401
    bad = Client(d.url, token='not-a-token-' + 'z' * 20, validate=False)
    assert bad.delete('/v1/domains/test/snapshots/y').status == 401
    assert c.delete('/v1/domains/test/snapshots/no-such-snapshot').status == 404
    c.get('/v1/domains/test/snapshots')
    c.get('/v1/jobs')

    page = audit(c)
    items = page['items']
    assert page['next_page_token'] is None and page['next_cursor'] is None
    assert [(i['method'], i['path'], i['status']) for i in items] == [
        ('DELETE', '/v1/domains/test/snapshots/no-such-snapshot', 404),
        ('DELETE', '/v1/domains/test/snapshots/y', 401),
        ('POST', '/v1/domains/test/snapshots', 401),
        ('POST', '/v1/domains/test/snapshots', r.status),
    ], items
    assert [i['who'] for i in items] == ['admin', None, None, 'admin']
    assert all(i['remote'] == '127.0.0.1' for i in items), items
    assert all(i['domain'] == 'test' for i in items), items
    assert items[3]['job_id'] == job_id
    assert all(i['job_id'] is None for i in items[:3]), items
    for i in items:
        assert i['time'] >= since and i['time'].endswith('Z'), i
    text = json.dumps(page)
    assert d.token not in text and 'not-a-token' not in text

    logged = log_records(d)
    assert [(i['method'], i['status']) for i in logged] == \
        [(i['method'], i['status']) for i in reversed(items)], logged
    assert d.token not in d.log()


def test_the_audit_log_is_for_admins(vv_auth):
    d = vv_auth
    viewer, operator = add_token(d, 'viewer', 'vw'), add_token(d, 'operator', 'op')
    d.restart()
    for token in (viewer, operator):
        r = Client(d.url, token=token, validate=False).get('/v1/audit')
        assert r.status == 403 and r.json['code'] == 'forbidden', r
    assert Client(d.url, validate=False).get('/v1/audit').status == 401
    op = Client(d.url, token=operator)
    assert op.post('/v1/domains/test/snapshots', json={'name': 'by-op'}).status in (201, 202)
    assert audit(d.client)['items'][0]['who'] == 'op'


def test_filters_and_paging(vv_auth):
    d = vv_auth
    c = d.client
    for k in range(5):
        assert c.delete(f'/v1/domains/test/snapshots/none-{k}').status == 404
    assert c.delete('/v1/domains/other/snapshots/none').status == 404
    mid = time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(time.time() + 1))
    deadline = time.time() + 10
    while time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime()) <= mid and time.time() < deadline:
        time.sleep(0.05)
    assert c.delete('/v1/jobs/no-such-job').status == 404

    assert [i['path'] for i in audit(c, '?domain=other')['items']] == \
        ['/v1/domains/other/snapshots/none']
    assert len(audit(c, '?domain=test')['items']) == 5
    late = audit(c, f'?since={mid}Z')['items']
    assert [i['path'] for i in late] == ['/v1/jobs/no-such-job'], late
    assert late[0]['domain'] is None
    assert len(audit(c, f'?until={mid}%2B00:00')['items']) == 6
    assert audit(c, '?until=2000-01-01T00:00:00.5Z')['items'] == []

    seen, token = [], None
    while True:
        page = audit(c, '?limit=2' + (f'&page_token={token}' if token else ''))
        assert len(page['items']) <= 2
        seen += [i['path'] for i in page['items']]
        token = page['next_page_token']
        if token is None:
            break
    assert seen == [i['path'] for i in audit(c)['items']] and len(seen) == 7
    # The deprecated cursor reads the same position.
    first = audit(c, '?limit=2')
    assert audit(c, f"?limit=2&cursor={first['next_cursor']}")['items'] == \
        audit(c, f"?limit=2&page_token={first['next_page_token']}")['items']
    for bad in ('?since=yesterday', '?until=2026-13-01T00:00:00Z', '?limit=0', '?cursor=x',
                '?page_token=x', '?limit=1001', '?domain=', '?since=2026-01-01T00:00:00'):
        r = c.get('/v1/audit' + bad)
        assert r.status == 400 and r.json['code'] == 'invalid_request', (bad, r)


def test_records_survive_a_restart_and_old_ones_expire(vv_auth):
    d = vv_auth
    c = d.client
    assert c.delete('/v1/domains/test/snapshots/gone').status == 404
    d.stop()
    old_ms = int((time.time() - 100 * 86400) * 1000)
    subprocess.run(['sqlite3', d.db_path,
                    'INSERT INTO audit (time_ms, who, remote, method, path, status)'
                    f" VALUES ({old_ms}, 'old', '10.0.0.1', 'DELETE', '/v1/old', 204)"],
                   check=True)
    d.start()
    items = audit(c)['items']
    assert [i['path'] for i in items] == ['/v1/domains/test/snapshots/gone'], items
    assert 'deleted 1 record' in d.log()

    d.stop()
    subprocess.run(['sqlite3', d.db_path,
                    'INSERT INTO audit (time_ms, who, remote, method, path, status)'
                    f" VALUES ({old_ms}, 'old', '10.0.0.1', 'DELETE', '/v1/old', 204)"],
                   check=True)
    d.args += ['--audit-retention-days', '0']
    d.start()
    assert sorted(i['path'] for i in audit(c)['items']) == \
        ['/v1/domains/test/snapshots/gone', '/v1/old'], '0 keeps records forever'


def test_retention_option_is_checked(vv_auth):
    from conftest import BIN
    r = subprocess.run([BIN, '--audit-retention-days', 'soon'], capture_output=True, text=True)
    assert r.returncode == 2 and 'audit-retention-days' in r.stderr, r


def test_a_unix_socket_peer_is_recorded_by_uid(make_daemon):
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self, path):
            super().__init__('localhost', timeout=10)
            self.sock_path = path

        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(self.sock_path)

    def call(method, url):
        c = UnixConnection(sock)
        try:
            c.request(method, url, headers={'Content-Type': 'application/json'} if method != 'GET'
                      else {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    d = make_daemon('test:///default', no_auth=False)
    sock = os.path.join(d.dir, 'vv.sock')
    d.args += ['--listen', f'unix:{sock}']
    d.start(wait=False)
    deadline = time.time() + 20
    while not os.path.exists(sock):
        assert d.proc.poll() is None and time.time() < deadline, d.log()
        time.sleep(0.05)
    assert call('DELETE', '/v1/domains/test/snapshots/nope')[0] == 404
    status, body = call('GET', '/v1/audit')
    assert status == 200, body
    items = json.loads(body)['items']
    assert [(i['who'], i['remote'], i['method'], i['status'], i['domain']) for i in items] == \
        [(f'uid:{os.getuid()}', 'unix', 'DELETE', 404, 'test')], items


def test_the_record_is_written_before_the_answer(vv_auth):
    """A client that has the answer of a write finds its record: nothing is written after."""
    c = vv_auth.client
    for k in range(40):
        assert c.delete(f'/v1/domains/test/snapshots/gone-{k}').status == 404
        items = audit(c, '?limit=1')['items']
        assert items and items[0]['path'] == f'/v1/domains/test/snapshots/gone-{k}', (k, items)
