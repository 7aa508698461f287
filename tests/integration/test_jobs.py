"""Jobs: the generic facility behind every long operation, seen through GET/DELETE /v1/jobs.

Full snapshots of a running domain run as jobs, so they are the jobs these tests make. Jobs
are kept in SQLite at every state change: a restart shows how each ended, and a job that was
running when the daemon died is shown failed with the code `interrupted` (or, where libvirt
still ran it or finished it, how it really ended).
"""
import sqlite3
import time
from datetime import datetime

import pytest

from helpers import problem

STATES = ('queued', 'running', 'succeeded', 'failed', 'cancelled')


def when(s):
    return datetime.strptime(s, '%Y-%m-%dT%H:%M:%S.%fZ') if s else None


def submit(c, dom='test', name=None):
    r = c.post(f'/v1/domains/{dom}/snapshots', json={'name': name} if name else {})
    assert r.status == 202, r
    assert r.headers['location'] == f"/v1/jobs/{r.json['id']}"
    return r.json


def test_job_lifecycle(vv_test):
    c = vv_test.client
    queued = submit(c, name='j1')
    assert queued['state'] in ('queued', 'running', 'succeeded')
    assert queued['kind'] == 'snapshot_create' and queued['domain'] == 'test'
    assert queued['error'] is None and queued['result'] is None
    assert queued['progress'] == {'bytes_done': 0, 'bytes_total': 0}
    job = c.wait_job(queued['id'])
    assert job['state'] == 'succeeded', job
    assert job['result'] == {'snapshot': 'j1'} and job['error'] is None
    assert when(job['created_at']) <= when(job['started_at']) <= when(job['finished_at'])
    assert job['id'] == queued['id'] and job['created_at'] == queued['created_at']
    assert c.get('/v1/domains/test/snapshots/j1').status == 200

    # The record outlives the process.
    vv_test.restart()
    again = c.get(f"/v1/jobs/{job['id']}")
    assert again.status == 200 and again.json == job, again

    # A job that ended cannot be cancelled; unknown jobs are not found.
    p = problem(c.delete(f"/v1/jobs/{job['id']}"), 409, 'conflict')
    assert 'succeeded' in p['detail']
    problem(c.get('/v1/jobs/0123456789abcdef0123456789abcdef'), 404, 'not_found')
    problem(c.delete('/v1/jobs/0123456789abcdef0123456789abcdef'), 404, 'not_found')
    problem(c.get('/v1/jobs/%27%3B%20DROP%20TABLE%20jobs'), 404, 'not_found')
    assert c.get(f"/v1/jobs/{job['id']}").status == 200


def test_list_filters_and_pages(vv_test):
    c = vv_test.client
    made = []
    for i in range(7):
        made.append(c.wait_job(submit(c, name=f'p{i}')['id']))
    uuid = c.get('/v1/domains/test').json['uuid']

    for name in ('page_token', 'cursor'):  # cursor: the deprecated spelling
        seen, token, pages = [], None, 0
        while True:
            q = '/v1/jobs?limit=3' + (f'&{name}={token}' if token else '')
            r = c.get(q)
            assert r.status == 200, r
            assert len(r.json['items']) <= 3
            seen += r.json['items']
            pages += 1
            token = r.json['next_page_token' if name == 'page_token' else 'next_cursor']
            if token is None:
                break
        assert pages == 3
        assert [j['id'] for j in seen] == [j['id'] for j in reversed(made)], 'newest first, once'

    everything = c.get('/v1/jobs').json
    assert len(everything['items']) == 7 and everything['next_page_token'] is None
    assert everything['next_cursor'] is None
    assert len(c.get('/v1/jobs?domain=test').json['items']) == 7
    assert len(c.get(f'/v1/jobs?domain={uuid}').json['items']) == 7
    assert c.get('/v1/jobs?domain=other').json['items'] == []
    assert len(c.get('/v1/jobs?state=succeeded').json['items']) == 7
    assert c.get('/v1/jobs?state=failed').json['items'] == []
    assert c.get('/v1/jobs?state=succeeded&domain=test&limit=1').json['items'][0]['id'] == \
        made[-1]['id']

    for q in ('state=done', 'limit=0', 'limit=1001', 'limit=abc', 'limit=-1', 'cursor=xyz',
              'cursor=0', 'page_token=xyz', 'page_token=MTpqb2JzOjA', 'domain='):
        problem(c.get(f'/v1/jobs?{q}'), 400, 'invalid_request')


def insert_job(db_path, job_id, state, kind='snapshot_create', domain='test', uuid=None,
               params=None):
    now = int(time.time() * 1000)
    con = sqlite3.connect(db_path)
    with con:
        con.execute('INSERT INTO jobs (id, kind, domain, domain_uuid, state, params, created_ms,'
                    ' started_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                    (job_id, kind, domain, uuid, state, params, now,
                     now if state == 'running' else None))
    con.close()


def test_unfinished_jobs_are_interrupted_at_restart(vv_test):
    c = vv_test.client
    uuid = c.get('/v1/domains/test').json['uuid']
    done = c.wait_job(submit(c, name='before')['id'])
    vv_test.stop()
    # What a daemon that died would leave behind.
    insert_job(vv_test.db_path, 'a' * 32, 'running', uuid=uuid, params='ghost')
    insert_job(vv_test.db_path, 'b' * 32, 'queued', uuid=uuid, params='ghost2')
    insert_job(vv_test.db_path, 'c' * 32, 'running', kind='from_the_future', uuid=uuid)
    vv_test.start()

    for jid in ('a' * 32, 'b' * 32, 'c' * 32):
        j = c.get(f'/v1/jobs/{jid}').json
        assert j['state'] == 'failed', j
        assert j['error']['code'] == 'interrupted' and j['error']['status'] == 500, j
        assert 'interrupted' in j['error']['detail']
        assert j['finished_at'] is not None
    assert c.get(f"/v1/jobs/{done['id']}").json == done
    assert len(c.get('/v1/jobs?state=failed').json['items']) == 3
    assert c.get('/v1/jobs?state=running').json['items'] == []
    # The domain is not left claimed by the dead jobs.
    assert c.wait_job(submit(c, name='after')['id'])['state'] == 'succeeded'


def test_resumed_when_libvirt_finished_it(vv_qemu, qemu_domain):
    """A job whose snapshot libvirt completed while the daemon was away ends succeeded."""
    c, dom = vv_qemu.client, qemu_domain
    uuid = c.get(f'/v1/domains/{dom}').json['uuid']
    c.wait_job(submit(c, dom, name='made')['id'])
    vv_qemu.stop()
    insert_job(vv_qemu.db_path, 'd' * 32, 'running', domain=dom, uuid=uuid, params='made')
    insert_job(vv_qemu.db_path, 'e' * 32, 'running', domain=dom, uuid=uuid, params='never')
    vv_qemu.start()
    vv_qemu.wait_ready()
    j = c.wait_job('d' * 32)
    assert j['state'] == 'succeeded' and j['result'] == {'snapshot': 'made'}, j
    j = c.wait_job('e' * 32)
    assert j['state'] == 'failed' and j['error']['code'] == 'interrupted', j


def test_killed_while_a_job_runs(vv_qemu, qemu_domain):
    """SIGKILL right after the 202: after a restart the job is finished or interrupted."""
    c, dom = vv_qemu.client, qemu_domain
    job = submit(c, dom, name='killed')
    vv_qemu.kill()
    vv_qemu.start()
    vv_qemu.wait_ready()
    j = c.wait_job(job['id'], timeout=60)
    snaps = [s['name'] for s in c.get(f'/v1/domains/{dom}/snapshots').json['items']]
    if j['state'] == 'succeeded':
        assert j['result'] == {'snapshot': 'killed'} and 'killed' in snaps, j
    else:
        assert j['state'] == 'failed' and j['error']['code'] == 'interrupted', j
    # Either way the domain is free for the next job.
    assert c.wait_job(submit(c, dom, name='next')['id'])['state'] == 'succeeded'


def test_one_job_per_domain(vv_qemu, qemu_domain):
    """While a job holds a domain, other changes to it answer 409 domain_busy."""
    c, dom = vv_qemu.client, qemu_domain
    busy = 0
    for i in range(20):
        first = submit(c, dom, name=f'b{i}')
        r = c.post(f'/v1/domains/{dom}/snapshots', json={'name': f'b{i}x', 'kind': 'disk_only'})
        if r.status == 409:
            p = r.json
            assert p['code'] == 'domain_busy' and first['id'] in p['detail'], p
            busy += 1
        else:
            assert r.status == 201, r
        c.wait_job(first['id'])
        if busy:
            break
    assert busy, 'never caught the domain busy in 20 tries'


def test_cancel_a_running_snapshot(vv_qemu, qemu_domain):
    """DELETE on a job: 200 when it never started, 202 while it stops, 409 once it ended."""
    c, dom = vv_qemu.client, qemu_domain
    for i in range(5):
        job = submit(c, dom, name=f'to-cancel-{i}')
        r = c.delete(f"/v1/jobs/{job['id']}")
        end = c.wait_job(job['id'])
        snaps = [s['name'] for s in c.get(f'/v1/domains/{dom}/snapshots').json['items']]
        if r.status == 409:
            assert r.json['code'] == 'conflict' and 'ended already' in r.json['detail'], r.json
            assert end['state'] == 'succeeded', end
            continue
        assert r.status in (200, 202) and r.json['id'] == job['id'], r
        assert r.json['state'] == ('cancelled' if r.status == 200 else 'running'), r.json
        # Asked in time, the snapshot is not taken; too late, libvirt's result stands.
        if end['state'] == 'cancelled':
            assert end['error']['code'] == 'cancelled' and f'to-cancel-{i}' not in snaps, end
        else:
            assert end['state'] == 'succeeded' and f'to-cancel-{i}' in snaps, end
        # Cancelling again: it has ended.
        problem(c.delete(f"/v1/jobs/{job['id']}"), 409, 'conflict')
