"""Idempotency-Key on every POST (issue 16, point 1).

A POST with a key is done once per caller and key; a retry with the same key and the same
request gets the kept answer again (`Idempotent-Replayed: true`) and nothing is done twice,
across restarts too. The same key with another request answers 422; a retry while the first
is still being answered, 409. To hold a request in flight for exactly as long as the test
wants, the test stops the domain's QEMU (SIGSTOP): a reconcile then waits for QEMU's monitor
until SIGCONT, on a worker, while the HTTP threads answer the retries.
"""
import ast
import grp
import hashlib
import json
import os
import secrets
import threading
import uuid

import pytest

from client import Client
from helpers import as_user, metric, problem, raw, unix_request, wait_for

REPLAYED = 'idempotent-replayed'


def post(c, path, body, key, **kw):
    return c.post(path, json=body, headers={'Idempotency-Key': key}, **kw)


def key():
    return str(uuid.uuid4())


def snapshot(c, name, k=None):
    """Takes snapshot name of the test driver's domain (with key k); returns the answer."""
    r = post(c, '/v1/domains/test/snapshots', {'name': name}, k or key())
    assert r.status in (201, 202), r
    if r.status == 202 and REPLAYED not in r.headers:
        assert c.wait_job(r.json['id'])['state'] == 'succeeded'
    return r


def backups_of(c, dom):
    r = c.get(f'/v1/domains/{dom}/backups')
    assert r.status == 200, r
    return r.json['items']


def test_a_backup_sent_five_times_is_taken_once_even_across_a_restart(vv_qemu, qemu_domain):
    d, dom, k = vv_qemu, qemu_domain, key()
    c = d.client
    path = f'/v1/domains/{dom}/backups'
    answers = [post(c, path, {'type': 'full'}, k) for _ in range(5)]

    first = answers[0]
    assert first.status == 202, first
    assert REPLAYED not in first.headers, 'the first answer is no replay'
    job_id = first.json['job_id']
    assert first.headers['location'] == f'/v1/jobs/{job_id}'
    for r in answers[1:]:
        assert r.status == 202, r
        assert r.headers.get(REPLAYED) == 'true', r.headers
        assert r.raw == first.raw, 'a replay is the first answer, byte for byte'
        assert r.json['job_id'] == job_id
        assert r.headers['location'] == first.headers['location']
        assert r.content_type == first.content_type
    job = c.wait_job(job_id)
    assert job['state'] == 'succeeded', job
    items = backups_of(c, dom)
    assert [b['id'] for b in items] == [first.json['id']], 'five retries took one backup'

    # The same key with another body or another path: refused, nothing done.
    p = problem(post(c, path, {'type': 'incremental'}, k), 422, 'idempotency_key_reused')
    assert 'Idempotency-Key' in p['detail']
    problem(post(c, f'/v1/domains/{dom}/checkpoints', {'name': 'cp-x'}, k), 422,
            'idempotency_key_reused')
    assert c.get(f'/v1/domains/{dom}/checkpoints/cp-x').status == 404

    # A restart keeps the answer: the retry still gets it, and still takes no backup.
    d.restart()
    d.wait_ready()
    again = post(c, path, {'type': 'full'}, k)
    assert again.status == 202 and again.headers.get(REPLAYED) == 'true', again
    assert again.raw == first.raw
    assert [b['id'] for b in backups_of(c, dom)] == [first.json['id']]

    # A new key is a new request.
    second = post(c, path, {'type': 'full'}, key())
    assert second.status == 202 and REPLAYED not in second.headers, second
    assert second.json['job_id'] != job_id
    job = c.wait_job(second.json['job_id'])
    assert job['state'] == 'succeeded', (job, d.log()[-6000:])
    assert len(backups_of(c, dom)) == 2



def test_a_retry_while_the_first_is_answered_gets_409(vv_qemu, qemu_domain, held_qemu):
    d, dom, k = vv_qemu, qemu_domain, key()
    c = d.client
    stop, cont = held_qemu
    path = f'/v1/domains/{dom}/checkpoints:reconcile'
    running = 'virtvault_http_deferred_requests'

    stop()
    first = []
    t = threading.Thread(target=lambda: first.append(post(c, path, {}, k)))
    t.start()
    try:
        # The first request holds its key from before it is handed to a worker.
        wait_for('the first reconcile on a worker',
                 lambda: metric(c.get('/metrics').text, running, 'state="running"') == 1,
                 interval=0.05)
        p = problem(post(c, path, {}, k), 409, 'idempotency_key_in_use')
        assert 'still being answered' in p['detail']
        problem(post(c, path, {'adopt': False}, k), 422, 'idempotency_key_reused')
        assert not first, 'the first reconcile answered while QEMU was stopped'
    finally:
        cont()
        t.join(60)
    assert first and first[0].status == 200, first
    assert REPLAYED not in first[0].headers
    again = post(c, path, {}, k)
    assert again.status == 200 and again.headers.get(REPLAYED) == 'true', again
    assert again.raw == first[0].raw


def test_a_post_that_waits_for_its_job_holds_its_key(vv_qemu, qemu_domain):
    """A pull backup's job runs until it is finished: a POST ?wait= for it waits that long, and
    its key is in use meanwhile; its answer, the ended job, is kept."""
    c, dom, k = vv_qemu.client, qemu_domain, key()
    path = f'/v1/domains/{dom}/backups'
    body = {'mode': 'pull', 'type': 'full'}
    first = []
    t = threading.Thread(target=lambda: first.append(post(c, f'{path}?wait=120', body, k)))
    t.start()
    try:
        wait_for('the POST to wait for its job',
                 lambda: metric(c.get('/metrics').text, 'virtvault_http_waiting_requests') == 1,
                 timeout=60, interval=0.05)
        problem(post(c, path, body, k), 409, 'idempotency_key_in_use')
        problem(post(c, f'{path}?wait=120', body, k), 409, 'idempotency_key_in_use')
        items = backups_of(c, dom)
        assert len(items) == 1 and items[0]['mode'] == 'pull', items
        wait_for('the pull backup to be ready',
                 lambda: c.get(f'{path}/{items[0]["id"]}').json['state'] == 'ready',
                 timeout=60, interval=0.1)
        assert not first, 'the POST answered before its job ended'
        r = c.post(f'{path}/{items[0]["id"]}/finish')
        assert r.status == 200, r
    finally:
        t.join(60)
    assert first and first[0].status == 200, first
    assert first[0].json['state'] == 'succeeded', first[0].json
    again = post(c, path, body, k)
    assert again.status == 200 and again.headers.get(REPLAYED) == 'true', again
    assert again.raw == first[0].raw
    assert len(backups_of(c, dom)) == 1


def test_a_refused_request_is_replayed_as_it_was(vv_test):
    c, k = vv_test.client, key()
    path = '/v1/domains/test/snapshots'
    bad = {'name': 'ok', 'no_such_field': 1}
    r1 = problem(post(c, path, bad, k), 400, 'invalid_request')
    r2 = post(c, path, bad, k)
    assert r2.status == 400 and r2.headers.get(REPLAYED) == 'true', r2
    assert r2.json == r1
    # Malformed JSON too: the key covers the body as sent.
    k2 = key()
    hdr = {'Idempotency-Key': k2, 'Content-Type': 'application/json'}
    r3 = c.post(path, body='{"name": ', headers=hdr)
    r4 = c.post(path, body='{"name": ', headers=hdr)
    assert r3.status == r4.status == 400 and r4.headers.get(REPLAYED) == 'true', (r3, r4)
    assert r3.raw == r4.raw
    # A domain that is not there: 404, kept too (a retry is the same request).
    k3 = key()
    r5 = problem(post(c, '/v1/domains/nope/snapshots', {'name': 's'}, k3), 404, 'not_found')
    r6 = post(c, '/v1/domains/nope/snapshots', {'name': 's'}, k3)
    assert r6.status == 404 and r6.headers.get(REPLAYED) == 'true' and r6.json == r5


def test_answers_a_retry_may_get_past_are_not_kept(vv_test):
    """5xx (here 501) and 409 leave the key free: the retry runs the request again."""
    c = vv_test.client
    k = key()
    for _ in range(2):
        r = post(c, '/v1/domains/test/backups', {'type': 'full'}, k)
        problem(r, 501, 'unsupported')
        assert REPLAYED not in r.headers, 'a 5xx is not kept'
    snapshot(c, 's1')
    k = key()
    for _ in range(2):
        r = post(c, '/v1/domains/test/snapshots', {'name': 's1'}, k)
        problem(r, 409)
        assert REPLAYED not in r.headers, 'a 409 is not kept'
    r = c.delete('/v1/domains/test/snapshots/s1')
    assert r.status in (200, 202, 204), r
    wait_for('s1 gone', lambda: c.get('/v1/domains/test/snapshots/s1').status == 404)
    r = post(c, '/v1/domains/test/snapshots', {'name': 's1'}, k)
    assert r.status in (201, 202) and REPLAYED not in r.headers, \
        'the retry after the conflict ran the request'


def test_bad_keys_are_refused_naming_the_header(vv_test):
    d = vv_test
    body = b'{"name": "never"}'

    def send(*keys):
        head = (f'POST /v1/domains/test/snapshots HTTP/1.1\r\nHost: 127.0.0.1:{d.port}\r\n'
                f'Connection: close\r\nContent-Type: application/json\r\n'
                f'Content-Length: {len(body)}\r\n').encode()
        for v in keys:
            head += b'Idempotency-Key: ' + v + b'\r\n'
        out = raw(d.port, head + b'\r\n' + body)
        status = int(out.split(b' ', 2)[1])
        return status, out.split(b'\r\n\r\n', 1)[1].decode('utf-8', 'replace')

    for keys in ([b''], [b'x' * 256], [b'a\x01b'], [b'caf\xc3\xa9'], [b'one', b'two']):
        status, text = send(*keys)
        assert status == 400, (keys, status, text)
        assert 'Idempotency-Key' in text and 'invalid_request' in text, text
    status, _ = send(b'x' * 255)
    assert status in (201, 202), 'a key of 255 characters is fine'
    # A 202 is a job that makes the snapshot; it shows once that job has run.
    wait_for('the snapshot of the request with the good key',
             lambda: d.client.get('/v1/domains/test/snapshots/never').status == 200)


def token_line(token, role, name):
    return f'sha256:{hashlib.sha256(token.encode()).hexdigest()} {role} name={name}\n'


def test_keys_of_two_tokens_do_not_collide(make_daemon, tmp_path):
    alice, bob = secrets.token_hex(32), secrets.token_hex(32)
    tokens = tmp_path / 'tokens'
    tokens.write_text(token_line(alice, 'operator', 'ci') + token_line(bob, 'operator', 'ci'))
    os.chmod(tokens, 0o600)
    d = make_daemon('test:///default', args=['--token-file', str(tokens)]).start()
    a, b = Client(d.url, token=alice), Client(d.url, token=bob)
    path, k = '/v1/domains/test/snapshots', key()

    ra = snapshot(a, 'from-a', k)
    assert REPLAYED not in ra.headers
    # Bob's key of the same text, with another body: his own key (no 422), although both
    # tokens bear the same name.
    rb = snapshot(b, 'from-b', k)
    assert REPLAYED not in rb.headers
    # In Bob's scope the key now stands for his request, not Alice's.
    problem(post(b, path, {'name': 'from-a'}, k), 422, 'idempotency_key_reused')
    # Each one's retry gets his own answer.
    ra2 = post(a, path, {'name': 'from-a'}, k)
    assert ra2.headers.get(REPLAYED) == 'true' and ra2.raw == ra.raw, ra2
    rb2 = post(b, path, {'name': 'from-b'}, k)
    assert rb2.headers.get(REPLAYED) == 'true' and rb2.raw == rb.raw, rb2


def test_keys_of_two_socket_users_do_not_collide(make_daemon):
    """On the Unix socket the scope is the peer's uid: root and a member of the socket's group
    (both admin without a token) each have their own keys."""
    d = make_daemon('test:///default', no_auth=False)
    os.chmod(d.dir, 0o755)
    sock = os.path.join(d.dir, 'vv.sock')
    d.args += ['--listen', f'unix:{sock}', '--socket-group', grp.getgrgid(65534).gr_name]
    d.start(wait=False)
    wait_for('the socket', lambda: d.proc.poll() is None and os.path.exists(sock)
             or d.proc.poll() is not None)
    assert d.proc.poll() is None, d.log()
    k = key()

    def simulate(times):
        body = json.dumps({'retention': {'keep_last': 1}, 'times': times}).encode()
        status, headers, text = unix_request(
            sock, 'POST', '/v1/retention:simulate', body,
            {'Content-Type': 'application/json', 'Idempotency-Key': k})
        return status, headers.get(REPLAYED), text.decode()

    mine = ['2026-12-06T10:00:00Z']
    theirs = ['2026-12-06T10:00:00Z', '2026-12-05T10:00:00Z']
    first = simulate(mine)
    assert first[:2] == (200, None), first
    other = ast.literal_eval(as_user(65534, 65534, lambda: simulate(theirs)))
    assert other[:2] == (200, None), f'uid 65534 shares root\'s keys: {other}'
    assert simulate(mine) == (200, 'true', first[2]), 'root gets its own answer again'
    again = ast.literal_eval(as_user(65534, 65534, lambda: simulate(theirs)))
    assert again == (200, 'true', other[2]), again
    reused = ast.literal_eval(as_user(65534, 65534, lambda: simulate(mine)))
    assert reused[0] == 422 and 'idempotency_key_reused' in reused[2], reused
    assert d.stop() == 0
