"""Webhooks: /v1/webhooks (admin) and the signed, persisted, retried deliveries of events.

A receiver is a local HTTP server in the test (a thread); what it answers is set per test.
The signature is checked here with hmac, as a receiver would check it."""
import hashlib
import hmac
import http.server
import json
import os
import threading
import time

import pytest

from client import Client
from helpers import free_port, problem, wait_for

SECRET = 's3cret-for-the-tests'
FAST = ['--webhook-retry-base-ms', '100', '--webhook-retry-cap-ms', '400']


class Receiver:
    """A local HTTP server that records every POST and answers what `answers` says: a list of
    statuses used up one per request (then `default`); 302 comes with a Location to /moved."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.got = []
        self.answers = []
        self.default = 200
        self.lock = threading.Lock()
        self.server = None

    @property
    def url(self):
        return f'http://127.0.0.1:{self.port}/hook'

    def start(self):
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get('Content-Length', '0'))
                body = self.rfile.read(n)
                with rec.lock:
                    status = rec.answers.pop(0) if rec.answers else rec.default
                    rec.got.append({'path': self.path, 'headers': dict(self.headers),
                                    'body': body, 'status': status})
                self.send_response(status)
                if status == 302:
                    self.send_header('Location', f'http://127.0.0.1:{rec.port}/moved')
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def received(self, event=None, status=None):
        with self.lock:
            return [g for g in self.got
                    if (event is None or g['headers'].get('X-Virtvault-Event') == event) and
                    (status is None or g['status'] == status)]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def verify(got, secret=SECRET):
    """Checks a received delivery's signature and headers; returns its JSON body."""
    h = got['headers']
    ts = h['X-Virtvault-Timestamp']
    assert abs(int(ts) - time.time()) < 600, ts
    mac = hmac.new(secret.encode(), ts.encode() + b'.' + got['body'], hashlib.sha256)
    assert hmac.compare_digest(h['X-Virtvault-Signature'], 'sha256=' + mac.hexdigest()), h
    assert h['Content-Type'] == 'application/json'
    body = json.loads(got['body'])
    assert body['event'] == h['X-Virtvault-Event']
    assert body['id'] == h['X-Virtvault-Delivery']
    return body


def create(c, url, events=('*',), secret=SECRET):
    r = c.post('/v1/webhooks', json={'url': url, 'events': list(events), 'secret': secret})
    assert r.status == 201, r
    assert r.headers['location'] == f'/v1/webhooks/{r.json["id"]}'
    return r.json


def deliveries(c, wid, **q):
    query = '&'.join(f'{k}={v}' for k, v in q.items())
    r = c.get(f'/v1/webhooks/{wid}/deliveries' + (f'?{query}' if query else ''))
    assert r.status == 200, r
    return r.json


def snapshot_job(c, name):
    """Creates a snapshot of the test driver's domain; returns its job id (None without one)."""
    r = c.post('/v1/domains/test/snapshots', json={'name': name})
    assert r.status in (201, 202), r
    if r.status == 202:
        c.wait_job(r.json['id'])
        return r.json['id']
    return None


def test_crud_validation_and_the_secret_is_never_answered(vv_test):
    c = vv_test.client
    assert c.get('/v1/webhooks').json == {'items': [], 'next_page_token': None}
    w = create(c, 'https://ci.example.com/hook', ['backup.completed', 'job.failed'])
    assert w['events'] == ['job.failed', 'backup.completed']
    assert w['secret_set'] is True and 'secret' not in w
    assert c.get(f'/v1/webhooks/{w["id"]}').json == w

    r = c.put(f'/v1/webhooks/{w["id"]}', json={'url': 'http://127.0.0.1:9/x', 'events': ['*']})
    assert r.status == 200, r
    assert r.json['events'] == ['*'] and r.json['url'] == 'http://127.0.0.1:9/x'
    assert 'secret' not in r.json

    w2 = create(c, 'http://[::1]:8081/h', ['checkpoint.broken', 'domain.overdue'])
    page = c.get('/v1/webhooks?limit=1').json
    assert [x['id'] for x in page['items']] == [w2['id']]
    assert page['next_page_token']
    page2 = c.get(f'/v1/webhooks?limit=1&page_token={page["next_page_token"]}').json
    assert [x['id'] for x in page2['items']] == [w['id']]
    assert page2['next_page_token'] is None
    problem(c.get('/v1/webhooks?page_token=xyz!'), 400, 'invalid_request')
    problem(c.get('/v1/webhooks?limit=0'), 400, 'invalid_request')

    bad = [
        ({'url': 'ftp://example.com/x', 'events': ['*'], 'secret': 'k'}, '/url'),
        ({'url': 'file:///etc/passwd', 'events': ['*'], 'secret': 'k'}, '/url'),
        ({'url': 'http://', 'events': ['*'], 'secret': 'k'}, '/url'),
        ({'url': 'http://a b/', 'events': ['*'], 'secret': 'k'}, '/url'),
        ({'url': 'https://x/' + 'a' * 2100, 'events': ['*'], 'secret': 'k'}, '/url'),
        ({'url': 5, 'events': ['*'], 'secret': 'k'}, '/url'),
        ({'events': ['*'], 'secret': 'k'}, '/url'),
        ({'url': 'https://x/', 'events': ['job.exploded'], 'secret': 'k'}, '/events/0'),
        ({'url': 'https://x/', 'events': ['job.failed', 7], 'secret': 'k'}, '/events/1'),
        ({'url': 'https://x/', 'events': [], 'secret': 'k'}, '/events'),
        ({'url': 'https://x/', 'events': 'job.failed', 'secret': 'k'}, '/events'),
        ({'url': 'https://x/', 'events': ['*']}, '/secret'),
        ({'url': 'https://x/', 'events': ['*'], 'secret': ''}, '/secret'),
        ({'url': 'https://x/', 'events': ['*'], 'secret': 'k' * 300}, '/secret'),
        ({'url': 'https://x/', 'events': ['*'], 'secret': 'k', 'extra': 1}, '/extra'),
    ]
    for body, pointer in bad:
        p = problem(c.post('/v1/webhooks', json=body), 400, 'invalid_request')
        assert pointer in json.dumps(p), (body, p)
    p = problem(c.put(f'/v1/webhooks/{w["id"]}', json={'url': 'gopher://x', 'events': ['*']}),
                400, 'invalid_request')
    assert '/url' in json.dumps(p)
    assert c.get(f'/v1/webhooks/{w["id"]}').json['url'] == 'http://127.0.0.1:9/x', 'unchanged'
    assert len(c.get('/v1/webhooks').json['items']) == 2, 'nothing was created'

    problem(c.get('/v1/webhooks/' + '0' * 32), 404, 'not_found')
    problem(c.get('/v1/webhooks/nope'), 404, 'not_found')
    problem(c.put('/v1/webhooks/' + '0' * 32, json={'url': 'https://x/', 'events': ['*']}),
            404, 'not_found')
    problem(c.get('/v1/webhooks/' + '0' * 32 + '/deliveries'), 404, 'not_found')
    r = c.delete(f'/v1/webhooks/{w["id"]}')
    assert r.status == 204, r
    problem(c.delete(f'/v1/webhooks/{w["id"]}'), 404, 'not_found')
    assert [x['id'] for x in c.get('/v1/webhooks').json['items']] == [w2['id']]
    vv_test.stop()
    assert SECRET not in vv_test.log(), 'the secret is never logged'


def test_only_admins(make_daemon):
    from test_audit import add_token
    d = make_daemon('test:///default', no_auth=False).start()
    viewer, operator = add_token(d, 'viewer', 'vw'), add_token(d, 'operator', 'op')
    d.restart()
    w = create(d.client, 'https://ci.example.com/hook')
    for token in (viewer, operator):
        c = Client(d.url, token=token, validate=False)
        for method, path, body in [('GET', '/v1/webhooks', None),
                                   ('POST', '/v1/webhooks',
                                    {'url': 'https://x/', 'events': ['*'], 'secret': 'k'}),
                                   ('GET', f'/v1/webhooks/{w["id"]}', None),
                                   ('PUT', f'/v1/webhooks/{w["id"]}',
                                    {'url': 'https://x/', 'events': ['*']}),
                                   ('DELETE', f'/v1/webhooks/{w["id"]}', None),
                                   ('GET', f'/v1/webhooks/{w["id"]}/deliveries', None)]:
            r = c.request(method, path, json_body=body)
            assert r.status == 403 and r.json['code'] == 'forbidden', (method, path, r)
    assert Client(d.url, validate=False).get('/v1/webhooks').status == 401
    assert len(d.client.get('/v1/webhooks').json['items']) == 1


def test_job_event_is_signed_and_retried_until_a_2xx(make_daemon, receiver):
    d = make_daemon('test:///default', args=FAST).start()
    c = d.client
    w = create(c, receiver.url, ['job.succeeded'])
    other = create(c, receiver.url, ['backup.completed'], secret='other')
    receiver.answers = [500, 503]
    job = snapshot_job(c, 'wh1')
    assert job is not None, 'a snapshot of the test driver is a job'
    ok = wait_for('a 2xx after two failures', lambda: receiver.received(status=200))
    assert len(receiver.received()) == 3
    bodies = [verify(g) for g in receiver.received()]
    assert len({b['id'] for b in bodies}) == 1, 'the same delivery, retried'
    body = bodies[-1]
    assert body['event'] == 'job.succeeded' and body['webhook_id'] == w['id']
    assert body['data']['id'] == job and body['data']['state'] == 'succeeded'
    assert body['data']['kind'] == 'snapshot_create'
    assert ok[0]['path'] == '/hook'
    items = deliveries(c, w['id'])['items']
    assert len(items) == 1, items
    dl = items[0]
    assert dl['state'] == 'delivered' and dl['attempts'] == 3, dl
    assert dl['last_status_code'] == 200 and dl['last_error'] is None
    assert dl['id'] == body['id'] and dl['payload'] == body
    assert deliveries(c, other['id'])['items'] == [], 'not subscribed to job.succeeded'


def test_redirects_are_not_followed_and_deliveries_give_up(make_daemon, receiver):
    d = make_daemon('test:///default', args=FAST + ['--webhook-retry-for', '1']).start()
    c = d.client
    w = create(c, receiver.url)
    receiver.default = 302
    assert snapshot_job(c, 'wh2') is not None, 'a snapshot of the test driver is a job'
    dl = wait_for('the delivery given up',
                  lambda: [x for x in deliveries(c, w['id'])['items'] if x['state'] == 'failed'],
                  timeout=20)[0]
    assert dl['last_status_code'] == 302 and '302' in dl['last_error'], dl
    assert dl['attempts'] >= 2 and dl['next_attempt_at'] is None, dl
    assert receiver.received(), 'it was tried'
    assert all(g['path'] == '/hook' for g in receiver.got), 'the redirect was not followed'


def test_backup_events_survive_a_receiver_outage_and_a_restart(make_daemon, sandbox,
                                                              qemu_domain, receiver):
    """The issue's done-when: a signed delivery for a backup's end; the receiver is down for a
    while and the daemon restarts meanwhile; then it gets the retried ones, none lost."""
    from test_backups import backup
    d = make_daemon('qemu:///system', args=FAST).start()
    d.wait_ready()
    c = d.client
    w = create(c, receiver.url, ['backup.completed', 'job.succeeded', 'job.failed'])

    b1 = backup(c, qemu_domain, type='full')
    got = wait_for('backup.completed and job.succeeded',
                   lambda: len(receiver.received()) >= 2 and receiver.received())
    by_event = {verify(g)['event']: verify(g) for g in got}
    assert by_event['backup.completed']['data']['id'] == b1['id']
    assert by_event['backup.completed']['data']['state'] == 'completed'
    assert by_event['backup.completed']['data']['domain'] == qemu_domain
    assert by_event['job.succeeded']['data']['id'] == b1['job_id']
    assert by_event['job.succeeded']['data']['result']['backup_id'] == b1['id']

    receiver.stop()  # the receiver is down
    b2 = backup(c, qemu_domain, type='incremental')
    pending = wait_for('two failed attempts of each new delivery', lambda: (
        lambda items: len(items) == 2 and all(x['attempts'] >= 2 for x in items) and items)(
        [x for x in deliveries(c, w['id'])['items'] if x['state'] == 'pending']))
    assert all(x['last_status_code'] is None and x['last_error'] for x in pending), pending
    d.restart()
    d.wait_ready()
    still = [x for x in deliveries(c, w['id'])['items'] if x['state'] == 'pending']
    assert {x['id'] for x in still} == {x['id'] for x in pending}, 'kept across the restart'

    receiver.start()  # up again, same port
    wait_for('the retried deliveries', lambda: len(receiver.received()) >= 4, timeout=30)
    late = [verify(g) for g in receiver.received()[2:]]
    assert {b['id'] for b in late} == {x['id'] for x in pending}
    late_by_event = {b['event']: b for b in late}
    assert late_by_event['backup.completed']['data']['id'] == b2['id']
    assert late_by_event['job.succeeded']['data']['id'] == b2['job_id']
    items = wait_for('all delivered', lambda: (lambda i: all(
        x['state'] == 'delivered' for x in i) and i)(deliveries(c, w['id'])['items']))
    assert len(items) == 4
    for x in items:
        assert x['last_status_code'] == 200
    assert max(x['attempts'] for x in items) >= 3


def test_cli(vv_test):
    from test_cli import run
    body = json.dumps({'url': 'https://ci.example.com/h', 'events': ['job.failed'],
                       'secret': SECRET})
    r = run(vv_test, '-o', 'json', '--body', body, 'webhooks', 'create')
    assert r.returncode == 0, r.stderr
    w = json.loads(r.stdout)
    assert w['events'] == ['job.failed'] and SECRET not in r.stdout
    r = run(vv_test, '-o', 'json', '--body', json.dumps({'url': 'https://ci.example.com/2',
                                                          'events': ['*']}),
            'webhooks', 'update', w['id'])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['url'] == 'https://ci.example.com/2'
    r = run(vv_test, 'webhooks', 'list')
    assert r.returncode == 0 and w['id'] in r.stdout, r
    r = run(vv_test, '-o', 'json', 'webhooks', 'deliveries', w['id'])
    assert r.returncode == 0 and json.loads(r.stdout)['items'] == [], r
    assert run(vv_test, 'webhooks', 'delete', w['id']).returncode == 0
    assert run(vv_test, 'webhooks', 'show', w['id']).returncode == 3


def test_https_receivers_are_verified(make_daemon, receiver, tmp_path):
    """A receiver whose certificate no system CA signed gets nothing: the attempt fails."""
    import ssl
    import subprocess
    key, crt = str(tmp_path / 'k.pem'), str(tmp_path / 'c.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                    '-out', crt, '-days', '2', '-subj', '/CN=127.0.0.1',
                    '-addext', 'subjectAltName=IP:127.0.0.1'],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    receiver.server.socket = ctx.wrap_socket(receiver.server.socket, server_side=True)
    d = make_daemon('test:///default', args=FAST).start()
    c = d.client
    w = create(c, f'https://127.0.0.1:{receiver.port}/hook')
    assert snapshot_job(c, 'wh3') is not None, 'a snapshot of the test driver is a job'
    dl = wait_for('a failed attempt', lambda: [
        x for x in deliveries(c, w['id'])['items'] if x['attempts'] >= 2])[0]
    assert dl['state'] == 'pending' and dl['last_status_code'] is None, dl
    assert 'certificate' in dl['last_error'].lower(), dl
    assert receiver.received() == [], 'nothing reached the receiver'


def test_a_broken_checkpoint_is_an_event(make_daemon, sandbox, qemu_domain, receiver):
    import subprocess
    from helpers import disk_path, virsh
    from test_checkpoints import start_domain, stop_domain
    d = make_daemon('qemu:///system', args=FAST).start()
    d.wait_ready()
    c, dom = d.client, qemu_domain
    w = create(c, receiver.url, ['checkpoint.broken'])
    r = c.post(f'/v1/domains/{dom}/checkpoints', json={'name': 'c1'})
    assert r.status == 201, r
    d.stop()  # the domain changes behind the service's back: its bitmap is lost
    stop_domain(dom)
    subprocess.run(['qemu-img', 'bitmap', '--remove', disk_path(dom), 'c1'], check=True)
    virsh('checkpoint-delete', dom, 'c1', '--metadata')
    start_domain(dom)
    d.start()
    d.wait_ready()
    r = c.get(f'/v1/domains/{dom}/checkpoints?refresh=true')
    assert r.status == 200, r
    assert [x['state'] for x in r.json['items'] if x['name'] == 'c1'] == ['broken'], r.json
    got = wait_for('checkpoint.broken', lambda: receiver.received('checkpoint.broken'))
    body = verify(got[0])
    assert body['webhook_id'] == w['id']
    assert body['data']['name'] == 'c1' and body['data']['domain'] == dom, body
    assert body['data']['reason'], body
    assert len(receiver.received('checkpoint.broken')) == 1, 'once'


def test_an_overdue_domain_is_an_event(vv_test, receiver):
    """domain.overdue: the test driver's backups cannot start, so a policy every second leaves
    its domain overdue, once, with the policy named."""
    c = vv_test.client
    w = create(c, receiver.url, events=('domain.overdue',))
    r = c.post('/v1/policies', json={'name': 'late', 'domains': ['test'],
                                     'schedule': {'interval_seconds': 1}})
    assert r.status == 201, r
    got = wait_for('a domain.overdue delivery', lambda: receiver.received('domain.overdue'),
                   timeout=60)
    body = verify(got[0])
    assert body['data']['domain'] == 'test' and body['data']['policy'] == 'late', body
    assert body['data']['last_success'] is None and len(body['data']['domain_uuid']) == 36
    assert not receiver.received('job.failed')  # asked for overdue only
    r = deliveries(c, w['id'])
    assert [d['event'] for d in r['items']] == ['domain.overdue'], r
