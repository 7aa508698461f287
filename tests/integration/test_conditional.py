"""Conditional requests: the ETag of a single-resource GET, If-None-Match (304) and If-Match
(412) on it, and If-Match / If-None-Match on the DELETE of snapshots, checkpoints, backups and
jobs: a failed precondition changes nothing."""
import re

from helpers import problem

ETAG = re.compile(r'^"[0-9a-f]{32}"$')


def etag_of(c, path):
    r = c.get(path)
    assert r.status == 200, r
    assert ETAG.match(r.headers.get('etag', '')), r.headers
    return r.headers['etag']


def not_modified(r, etag):
    assert r.status == 304, r
    assert r.raw == b'', r.raw
    assert r.headers['etag'] == etag
    assert 'content-type' not in r.headers


def snapshot(c, dom, name):
    r = c.post(f'/v1/domains/{dom}/snapshots?wait=60', json={'name': name})
    assert r.status in (200, 201), r
    if r.status == 200:  # a job that ended
        assert r.json['state'] == 'succeeded', r.json


# --- test:///default -------------------------------------------------------------------------

def test_etag_is_stable_and_follows_the_resource(vv_test):
    c = vv_test.client
    snapshot(c, 'test', 's1')
    path = '/v1/domains/test/snapshots/s1'
    first = etag_of(c, path)
    assert etag_of(c, path) == first
    # The same resource by the domain's UUID has the same representation, so the same ETag.
    uuid = c.get('/v1/domains/test').json['uuid']
    assert etag_of(c, f'/v1/domains/{uuid}/snapshots/s1') == first
    # A new snapshot makes s1 no longer current: its representation, so its ETag, changes.
    snapshot(c, 'test', 's2')
    assert c.get(path).json['is_current'] is False
    second = etag_of(c, path)
    assert second != first
    # Another representation (libvirt's XML) has another ETag.
    r = c.get(f'{path}?format=xml')
    assert r.status == 200 and r.headers['etag'] not in (first, second), r.headers
    # The domain, the current snapshot: tagged too. Lists are not.
    etag_of(c, '/v1/domains/test')
    assert etag_of(c, '/v1/domains/test/snapshots/current') == etag_of(
        c, '/v1/domains/test/snapshots/s2')
    assert 'etag' not in c.get('/v1/domains/test/snapshots').headers
    assert 'etag' not in c.get('/v1/domains').headers
    # Errors carry none.
    r = c.get('/v1/domains/test/snapshots/nope')
    problem(r, 404, 'not_found')
    assert 'etag' not in r.headers


def test_if_none_match_answers_304_while_unchanged(vv_test):
    c = vv_test.client
    path = '/v1/domains/test'
    etag = etag_of(c, path)
    not_modified(c.get(path, headers={'If-None-Match': etag}), etag)
    not_modified(c.get(path, headers={'If-None-Match': f'"0000", W/{etag}'}), etag)
    not_modified(c.get(path, headers={'If-None-Match': '*'}), etag)
    not_modified(c.request('HEAD', path, headers={'If-None-Match': etag}), etag)
    r = c.get(path, headers={'If-None-Match': '"00000000000000000000000000000000"'})
    assert r.status == 200 and r.json['name'] == 'test' and r.headers['etag'] == etag, r
    # If-Match on a GET: 412 unless it names the current ETag.
    assert c.get(path, headers={'If-Match': etag}).status == 200
    p = problem(c.get(path, headers={'If-Match': '"0000"'}), 412, 'precondition_failed')
    assert etag in p['detail']
    # A missing resource: 404 whatever If-None-Match says.
    problem(c.get('/v1/domains/nope', headers={'If-None-Match': '*'}), 404, 'not_found')
    # A field that is no list of entity tags: 400, naming the header.
    p = problem(c.get(path, headers={'If-None-Match': 'abc'}), 400, 'invalid_request')
    assert 'If-None-Match' in p['detail']


def test_a_304_follows_a_change(vv_test):
    c = vv_test.client
    snapshot(c, 'test', 'a')
    path = '/v1/domains/test/snapshots/a'
    etag = etag_of(c, path)
    not_modified(c.get(path, headers={'If-None-Match': etag}), etag)
    snapshot(c, 'test', 'b')  # a is no longer current
    r = c.get(path, headers={'If-None-Match': etag})
    assert r.status == 200 and r.headers['etag'] != etag and r.json['name'] == 'a', r


def test_snapshot_delete_with_if_match(vv_test):
    c = vv_test.client
    for name in ('x', 'y', 'z'):
        snapshot(c, 'test', name)
    path = '/v1/domains/test/snapshots/x'
    etag = etag_of(c, path)

    # A wrong ETag, a weak one, "*"-with-tags, garbage: refused, the snapshot stays.
    p = problem(c.delete(path, headers={'If-Match': '"0123"'}), 412, 'precondition_failed')
    assert etag in p['detail']
    problem(c.delete(path, headers={'If-Match': f'W/{etag}'}), 412, 'precondition_failed')
    problem(c.delete(path, headers={'If-Match': 'nonsense'}), 400, 'invalid_request')
    problem(c.delete(path, headers={'If-None-Match': etag}), 412, 'precondition_failed')
    problem(c.delete(path, headers={'If-None-Match': '*'}), 412, 'precondition_failed')
    assert c.get(path).status == 200
    assert etag_of(c, path) == etag

    # The ETag read before the resource changed: refused.
    stale = etag_of(c, '/v1/domains/test/snapshots/z')  # current until w comes
    snapshot(c, 'test', 'w')
    problem(c.delete('/v1/domains/test/snapshots/z', headers={'If-Match': stale}), 412,
            'precondition_failed')
    assert c.get('/v1/domains/test/snapshots/z').status == 200

    # The right one, among others: deleted.
    r = c.delete(path, headers={'If-Match': f'"0000", {etag}'})
    assert r.status == 200 and r.json['deleted'] == ['x'], r
    # Gone: If-Match fails, "*" too; without If-Match it is a 404 as before.
    problem(c.delete(path, headers={'If-Match': etag}), 412, 'precondition_failed')
    problem(c.delete(path, headers={'If-Match': '*'}), 412, 'precondition_failed')
    problem(c.delete(path, headers={'If-None-Match': '*'}), 404, 'not_found')
    # "*": deleted when it exists.
    r = c.delete('/v1/domains/test/snapshots/y', headers={'If-Match': '*'})
    assert r.status == 200 and r.json['deleted'] == ['y'], r


def test_checkpoint_get_and_delete(vv_test):
    c = vv_test.client
    for name in ('cp1', 'cp2'):
        r = c.post('/v1/domains/test/checkpoints', json={'name': name})
        assert r.status == 201, r
    path = '/v1/domains/test/checkpoints/cp1'
    etag = etag_of(c, path)
    # The slow read (?refresh=true runs on a worker) tags and answers 304 the same way.
    r = c.get(f'{path}?refresh=true', headers={'If-None-Match': etag})
    not_modified(r, etag)
    # A deferred DELETE checks on its worker too.
    problem(c.delete(path, headers={'If-Match': '"ffff"'}), 412, 'precondition_failed')
    assert c.get(path).status == 200
    assert c.delete(path, headers={'If-Match': etag}).status == 204
    problem(c.get(path), 404, 'not_found')
    # cp2's parent was cp1: its representation changed with the delete.
    path2 = '/v1/domains/test/checkpoints/cp2'
    r = c.get(path2)
    assert r.json['parent'] is None
    problem(c.delete(path2, headers={'If-None-Match': r.headers['etag']}), 412,
            'precondition_failed')
    assert c.delete(path2, headers={'If-None-Match': '"other"'}).status == 204


# --- QEMU: a real backup -----------------------------------------------------------------------

def test_backup_and_job_with_preconditions(vv_qemu, qemu_domain):
    c = vv_qemu.client
    dom = qemu_domain
    r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'full'})
    assert r.status == 202, r
    b, job_id = r.json, r.json['job_id']
    job = c.wait_job(job_id)
    assert job['state'] == 'succeeded', job

    # The job: ended, so its ETag holds still; ?wait on an ended job answers at once, the same.
    jpath = f'/v1/jobs/{job_id}'
    jetag = etag_of(c, jpath)
    not_modified(c.get(f'{jpath}?wait=5', headers={'If-None-Match': jetag}), jetag)
    # Cancelling an ended job with a stale ETag: 412; the job is as it was.
    problem(c.delete(jpath, headers={'If-Match': '"abc"'}), 412, 'precondition_failed')
    assert etag_of(c, jpath) == jetag

    path = f'/v1/domains/{dom}/backups/{b["id"]}'
    etag = etag_of(c, path)
    assert etag_of(c, path) == etag
    not_modified(c.get(path, headers={'If-None-Match': etag}), etag)
    assert c.get(path, headers={'If-None-Match': '"1234"'}).status == 200

    p = problem(c.delete(path, headers={'If-Match': '"1234"'}), 412, 'precondition_failed')
    assert etag in p['detail']
    r = c.get(path)
    assert r.status == 200 and r.json['state'] == 'completed' and r.headers['etag'] == etag
    r = c.get(f'/v1/domains/{dom}/backups')
    assert [i['id'] for i in r.json['items']] == [b['id']]

    # PATCH (protected): a stale tag changes nothing; the current one does, and moves the tag.
    p = problem(c.patch(path, json={'protected': True}, headers={'If-Match': '"1234"'}), 412,
                'precondition_failed')
    assert c.get(path).json['protected'] is False
    r = c.patch(path, json={'protected': True}, headers={'If-Match': etag})
    assert r.status == 200 and r.json['protected'] is True, r
    protected = etag_of(c, path)
    assert protected != etag
    r = c.patch(path, json={'protected': False}, headers={'If-Match': protected})
    assert r.status == 200 and r.json['protected'] is False, r
    assert etag_of(c, path) == etag

    r = c.delete(path, headers={'If-Match': etag})
    assert r.status == 200 and r.json['deleted'] == [b['id']], r
    problem(c.get(path), 404, 'not_found')
    problem(c.delete(path, headers={'If-Match': '*'}), 412, 'precondition_failed')


def test_webhook_put_and_delete_with_if_match(vv_test):
    c = vv_test.client
    r = c.post('/v1/webhooks', json={'url': 'http://127.0.0.1:9/hook', 'events': ['*'],
                                     'secret': 's3cret-s3cret'})
    assert r.status == 201, r
    path = f"/v1/webhooks/{r.json['id']}"
    tag = etag_of(c, path)
    not_modified(c.get(path, headers={'If-None-Match': tag}), tag)
    body = {'url': 'http://127.0.0.1:9/other', 'events': ['job.failed']}
    # A stale tag changes nothing.
    problem(c.put(path, json=body, headers={'If-Match': '"0123456789abcdef0123456789abcdef"'}),
            412, 'precondition_failed')
    assert c.get(path).json['url'] == 'http://127.0.0.1:9/hook'
    # The current one does; the webhook's tag moves with it.
    r = c.put(path, json=body, headers={'If-Match': tag})
    assert r.status == 200 and r.json['url'] == 'http://127.0.0.1:9/other', r
    newer = etag_of(c, path)
    assert newer != tag
    problem(c.delete(path, headers={'If-Match': tag}), 412, 'precondition_failed')
    assert c.get(path).status == 200
    assert c.delete(path, headers={'If-Match': newer}).status == 204
    assert c.get(path).status == 404
