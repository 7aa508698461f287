"""Offsite copies (issue 19) against a real object store: a Ceph RADOS Gateway started once per
run (objstore.py), a bucket per test, real QEMU through the sandbox.

- remotes: CRUD, the write-only secret (0600 file; never in an answer, the log or the DB),
  paging, conditional requests, the check against the bucket, bad input naming the field;
- a full and two incrementals copied (encrypted, compressed), then restored byte-identical
  by a second daemon with its own empty database and vault;
- a copy killed several times mid-upload (SIGKILL) resumes and leaves exactly one complete copy;
- object lock: locked copies are never deleted early (409 with the due date); deletes from a
  bucket never break a chain; a cancelled copy leaves nothing behind;
- what a running copy reads is kept from local prunes and deletes until it ends.
"""
import json
import os
import sqlite3
import stat

import pytest

from helpers import MiB, backup, keep, problem, same_disk, wait_for

KEY = bytes(range(32))
QCOW2_MAGIC = b'QFI\xfb'


def remote_body(b, name='off', key_file=None, **kw):
    body = {'name': name, 'endpoint': b.endpoint, 'bucket': b.bucket, 'prefix': 'site/a',
            'access_key': b.access_key, 'secret': b.secret_key}
    if key_file:
        body['key_file'] = key_file
    body.update(kw)
    return body


def key_file(tmp_path, name='key', data=KEY):
    p = tmp_path / name
    p.write_bytes(data)
    os.chmod(p, 0o600)
    return str(p)


class Answers:
    """Every answer body a test saw, to show the secret is in none."""

    def __init__(self, client):
        self.c = client
        self.seen = []

    def __getattr__(self, method):
        fn = getattr(self.c, method)

        def call(*a, **kw):
            r = fn(*a, **kw)
            self.seen.append(r.text)
            return r
        return call

    def wait_job(self, job_id, **kw):
        j = self.c.wait_job(job_id, **kw)
        self.seen.append(json.dumps(j))
        return j


def copy(c, dom, backup_id, remote='off', **kw):
    r = c.post(f'/v1/domains/{dom}/backups/{backup_id}/copies', json={'remote': remote, **kw})
    assert r.status == 202, r
    assert r.json['kind'] == 'backup_copy' and r.headers['location'] == f'/v1/jobs/{r.json["id"]}'
    return r.json['id']


def restore_from(c, remote, backup_id, target_dir, fmt='raw'):
    r = c.post(f'/v1/remotes/{remote}/backups/{backup_id}/restore',
               json={'target_dir': target_dir, 'format': fmt})
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    return job['result']


def no_leftovers(bucket):
    assert bucket.uploads() == [], 'unfinished multipart uploads left in the bucket'


# ------------------------------------------------------------------------------------------


def test_remotes_api_secret_check_and_bad_input(vv_test, objstore_bucket, tmp_path):
    b = objstore_bucket
    c = Answers(vv_test.client)
    kf = key_file(tmp_path)

    r = c.post('/v1/remotes', json=remote_body(b, key_file=kf))
    assert r.status == 201, r
    assert r.headers['location'] == '/v1/remotes/off'
    rem = r.json
    assert rem['secret_set'] is True and 'secret' not in rem and rem['encrypted'] is True
    assert rem['prefix'] == 'site/a' and rem['region'] == 'us-east-1' and rem['path_style']

    # The secret lives in a 0600 file of its own, in a 0700 folder, and nowhere else.
    sdir = os.path.join(vv_test.dir, 'remote-secrets')
    assert stat.S_IMODE(os.stat(sdir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(sdir, 'off')).st_mode) == 0o600
    with open(os.path.join(sdir, 'off')) as f:
        assert f.read() == b.secret_key

    # The check proves access and reports the bucket's features.
    r = c.post('/v1/remotes/off:check')
    assert r.status == 200, r
    assert r.json['ok'] is True and r.json['failed_step'] is None, r.json
    assert r.json['versioning'] is False and r.json['object_lock'] is False
    assert r.json['encrypted'] is True and len(r.json['key_id']) == 64
    assert list(b.keys()) == [], 'the probe object was left behind'

    # Another remote with a wrong secret: the check says where and why.
    r = c.post('/v1/remotes', json=remote_body(b, name='bad', secret='not-the-secret'))
    assert r.status == 201, r
    r = c.post('/v1/remotes/bad:check')
    assert r.status == 200 and r.json['ok'] is False, r
    assert r.json['failed_step'] == 'bucket' and 'SignatureDoesNotMatch' in r.json['detail']
    # What needs the bucket answers 502 with S3's error.
    r = c.get('/v1/remotes/bad/backups')
    problem(r, 502, 'remote_error')
    assert 'SignatureDoesNotMatch' in r.json['detail']

    # Changing without a secret keeps it; paging by name; conditional requests.
    r = c.get('/v1/remotes/off')
    etag = r.headers['etag']
    upd = remote_body(b, prefix='site/b')
    del upd['name'], upd['secret']
    r = c.put('/v1/remotes/off', json=upd, headers={'If-Match': '"nope"'})
    problem(r, 412)
    r = c.put('/v1/remotes/off', json=upd, headers={'If-Match': etag})
    assert r.status == 200 and r.json['prefix'] == 'site/b' and r.json['key_file'] is None, r
    assert c.post('/v1/remotes/off:check').json['ok'] is True
    r = c.get('/v1/remotes?limit=1')
    assert [x['name'] for x in r.json['items']] == ['bad'] and r.json['next_page_token']
    r = c.get('/v1/remotes?limit=1&page_token=' + r.json['next_page_token'])
    assert [x['name'] for x in r.json['items']] == ['off'] and r.json['next_page_token'] is None

    # Bad input: 400 naming the field; nothing is stored.
    for bad, pointer in [
        ({'name': 'a b'}, '/name'),
        ({'endpoint': 'ftp://x'}, '/endpoint'),
        ({'endpoint': 'http://host/path'}, '/endpoint'),
        ({'bucket': 'A'}, '/bucket'),
        ({'prefix': '/lead'}, '/prefix'),
        ({'prefix': 'a/../b'}, '/prefix'),
        ({'region': 'US EAST'}, '/region'),
        ({'secret': ''}, '/secret'),
        ({'access_key': 'a b'}, '/access_key'),
        ({'key_file': 'relative'}, '/key_file'),
        ({'key_file': str(tmp_path / 'missing')}, '/key_file'),
        ({'key_file': key_file(tmp_path, 'short', b'x' * 7)}, '/key_file'),
        ({'path_style': 'yes'}, '/path_style'),
        ({'surprise': 1}, '/surprise'),
    ]:
        body = remote_body(b, name='new')
        body.update(bad)
        r = c.post('/v1/remotes', json=body)
        p = problem(r, 400, 'invalid_request')
        assert p['errors'][0]['pointer'] == pointer, (bad, p)
    assert c.get('/v1/remotes/new').status == 404
    problem(c.post('/v1/remotes', json=remote_body(b)), 409, 'conflict')
    problem(c.get('/v1/remotes/nope'), 404, 'not_found')
    problem(c.post('/v1/remotes/nope:check'), 404)
    problem(c.post('/v1/domains/test/backups/x/copies', json={}), 400)
    r = c.post('/v1/domains/test/backups/x/copies', json={'remote': 'off', 'bandwidth': -1})
    assert problem(r, 400)['errors'][0]['pointer'] == '/bandwidth'

    r = c.delete('/v1/remotes/bad')
    assert r.status == 204
    assert not os.path.exists(os.path.join(sdir, 'bad'))
    problem(c.get('/v1/remotes/bad'), 404)

    # The secret is in no answer, no log line, no database page.
    for text in c.seen:
        assert b.secret_key not in text
    assert b.secret_key not in vv_test.log()
    for name in os.listdir(vv_test.dir):
        if name.startswith('virtvault.db'):
            with open(os.path.join(vv_test.dir, name), 'rb') as f:
                assert b.secret_key.encode() not in f.read(), name


def test_chain_copied_and_restored_by_another_host(vv_qemu, make_daemon, sandbox,
                                                   objstore_bucket, tmp_path):
    b = objstore_bucket
    c = Answers(vv_qemu.client)
    kf = key_file(tmp_path)
    size = 128 * MiB
    assert c.post('/v1/remotes', json=remote_body(b, key_file=kf)).status == 201

    with sandbox.domain(size='128M') as dom:
        # A: compressible and random data; full backup, copied.
        sandbox.write(dom, 0, 16 * MiB, 0xa1)
        sandbox.write(dom, 32 * MiB, 8 * MiB, 'random')
        keep(dom, size, str(tmp_path / 'a.raw'))
        full = backup(c, dom, type='full')
        job = c.wait_job(copy(c, dom, full['id']))
        assert job['state'] == 'succeeded', job
        (copied,) = job['result']['backups']
        assert copied.keys() == {'id', 'uploaded', 'object_bytes'}, job
        assert copied['id'] == full['id'] and copied['uploaded'] is True, job
        full_object_bytes = copied['object_bytes']
        assert job['progress']['bytes_done'] == job['progress']['bytes_total'] > 0

        # B and C: two incrementals; each copy uploads only itself.
        sandbox.write(dom, 64 * MiB, 8 * MiB, 0xb2)
        keep(dom, size, str(tmp_path / 'b.raw'))
        inc1 = backup(c, dom, type='incremental')
        sandbox.write(dom, 80 * MiB, 4 * MiB, 'random')
        keep(dom, size, str(tmp_path / 'c.raw'))
        inc2 = backup(c, dom, type='incremental')
        assert inc2['parent_id'] == inc1['id'] and inc1['parent_id'] == full['id']
        job = c.wait_job(copy(c, dom, inc2['id']))
        assert job['state'] == 'succeeded', job
        got = {x['id']: x['uploaded'] for x in job['result']['backups']}
        assert got == {full['id']: False, inc1['id']: True, inc2['id']: True}, job
        # Copying again uploads nothing.
        job = c.wait_job(copy(c, dom, inc2['id']))
        assert job['state'] == 'succeeded' and job['result']['bytes_uploaded'] == 0, job

        for x in (full, inc1, inc2):
            r = c.get(f'/v1/domains/{dom}/backups/{x["id"]}/copies')
            assert [(y['remote'], y['state']) for y in r.json['items']] == [('off', 'completed')]
            assert r.json['items'][0]['object_bytes'] > 0

    # The bucket: a manifest and one object per backup, nothing unfinished.
    keys = b.keys()
    assert len(keys) == 6, keys
    no_leftovers(b)
    for x in (full, inc1, inc2):
        base = f'site/a/{x["domain_uuid"]}/{x["id"]}/'
        assert base + 'manifest.json' in keys
        obj = base + 'vda.qcow2.zst.enc'
        data = b.get(obj)
        # Sealed: no qcow2 header, none of the guest's bytes in clear.
        assert not data.startswith(QCOW2_MAGIC) and data[:4] == b'VVOF'
        assert bytes([0xa1]) * 4096 not in data and bytes([0xb2]) * 4096 not in data
        m = json.loads(b.get(base + 'manifest.json'))
        assert m['encryption'] == 'aes-256-gcm' and m['key_id'] and m['compression'] == 'zstd'
        assert KEY.hex() not in json.dumps(m)
        assert m['domain_xml'] and m['disks'][0]['sha256'] == x['disks'][0]['sha256']
        if x is full:
            assert keys[obj] == full_object_bytes, (keys[obj], full_object_bytes)
        # Compressed: smaller than the image for compressible data.
        assert keys[obj] < x['stored_bytes'], (keys[obj], x['stored_bytes'])

    # Another host: its own empty database and vault, the same bucket and key.
    d2 = make_daemon('qemu:///system').start()
    d2.wait_ready()
    c2 = Answers(d2.client)
    assert c2.post('/v1/remotes', json=remote_body(b, key_file=kf)).status == 201
    # It never saw the domain (gone from libvirt too) nor any backup of it.
    assert c2.get(f'/v1/domains/{full["domain_uuid"]}/backups').status == 404
    items = c2.get('/v1/remotes/off/backups').json['items']
    assert [i['id'] for i in items] == sorted([full['id'], inc1['id'], inc2['id']])
    assert {i['host'] for i in items} == {os.uname().nodename}
    assert len(c2.get(f'/v1/remotes/off/backups?domain={full["domain_uuid"]}')
               .json['items']) == 3
    assert c2.get('/v1/remotes/off/backups?host=elsewhere').json['items'] == []
    page = c2.get('/v1/remotes/off/backups?limit=2').json
    assert len(page['items']) == 2 and page['next_page_token']

    root = os.path.join(d2.vault_dir, 'restore')
    for x, ref in [(full, 'a.raw'), (inc1, 'b.raw'), (inc2, 'c.raw')]:
        res = restore_from(c2, 'off', x['id'], os.path.join(root, x['id']))
        assert res['remote'] == 'off' and res['disks'][0]['target'] == 'vda'
        same_disk(res['disks'][0]['path'], str(tmp_path / ref))
        # Only the restored image is left: the downloaded chain is gone.
        assert os.listdir(os.path.join(root, x['id'])) == [
            os.path.basename(res['disks'][0]['path'])]
    res = restore_from(c2, 'off', inc1['id'], os.path.join(root, 'q'), fmt='qcow2')
    same_disk(res['disks'][0]['path'], str(tmp_path / 'b.raw'))

    # With another key the objects do not open: the job says which key they need.
    kf2 = key_file(tmp_path, 'key2', bytes(32))
    upd = remote_body(b, key_file=kf2)
    del upd['name'], upd['secret']
    assert c2.put('/v1/remotes/off', json=upd).status == 200
    r = c2.post(f'/v1/remotes/off/backups/{inc2["id"]}/restore',
                json={'target_dir': os.path.join(root, 'k'), 'format': 'raw'})
    assert r.status == 202, r
    job = c2.wait_job(r.json['id'])
    assert job['state'] == 'failed' and 'encrypted with key' in job['error']['detail'], job
    problem(c2.post('/v1/remotes/off/backups/nope/restore',
                    json={'target_dir': os.path.join(root, 'n'), 'format': 'raw'}), 404)
    problem(c2.post(f'/v1/remotes/off/backups/{inc2["id"]}/restore',
                    json={'target_dir': '/etc', 'format': 'raw'}), 400)

    for text in c.seen + c2.seen:
        assert b.secret_key not in text
    assert b.secret_key not in vv_qemu.log() and b.secret_key not in d2.log()


def parts_recorded(db_path):
    con = sqlite3.connect(db_path, timeout=10)
    try:
        return con.execute('SELECT count(*) FROM remote_parts').fetchone()[0]
    finally:
        con.close()


def test_copy_killed_mid_upload_resumes(vv_qemu, sandbox, objstore_bucket, tmp_path):
    b = objstore_bucket
    c = vv_qemu.client
    size = 64 * MiB
    assert c.post('/v1/remotes', json=remote_body(b)).status == 201

    with sandbox.domain(size='64M') as dom:
        sandbox.write(dom, 0, 56 * MiB, 'random')
        keep(dom, size, str(tmp_path / 'a.raw'))
        full = backup(c, dom, type='full')
    # Random data: about seven parts of 8 MiB, sent at 16 MiB/s.
    job_id = copy(c, full['domain_uuid'], full['id'], bandwidth=16 * MiB)
    seen = 0
    for want in (2, 4):
        wait_for(f'{want} parts recorded', lambda: parts_recorded(vv_qemu.db_path) >= want,
                 timeout=60, interval=0.05)
        n = parts_recorded(vv_qemu.db_path)
        assert n > seen
        seen = n
        vv_qemu.kill()
        vv_qemu.start()
        vv_qemu.wait_ready()
        # The same job goes on (taken over), from the parts recorded.
        wait_for('the job to run again', lambda: c.get(f'/v1/jobs/{job_id}').json['state']
                 in ('running', 'succeeded'), timeout=30)
    job = c.wait_job(job_id)
    assert job['state'] == 'succeeded', job
    total = job['result']['backups'][0]['object_bytes']
    # This run sent only what was missing.
    assert 0 < job['result']['bytes_uploaded'] < total, job['result']
    assert 'resuming the upload' in vv_qemu.log()

    keys = b.keys()
    base = f'site/a/{full["domain_uuid"]}/{full["id"]}/'
    assert sorted(keys) == [base + 'manifest.json', base + 'vda.qcow2.zst'], keys
    assert keys[base + 'vda.qcow2.zst'] == total
    no_leftovers(b)
    assert parts_recorded(vv_qemu.db_path) == 0  # the upload is done and forgotten
    data = b.get(base + 'vda.qcow2.zst')
    assert not data.startswith(QCOW2_MAGIC)
    res = restore_from(c, 'off', full['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'r'))
    same_disk(res['disks'][0]['path'], str(tmp_path / 'a.raw'))
    r = c.get(f'/v1/domains/{full["domain_uuid"]}/backups/{full["id"]}/copies')
    assert r.json['items'][0]['state'] == 'completed'


def test_object_lock_and_deletes_that_keep_chains(vv_qemu, sandbox, objstore, objstore_bucket,
                                                  tmp_path):
    c = vv_qemu.client
    locked = objstore.bucket(object_lock=True)
    plain = objstore_bucket
    assert c.post('/v1/remotes', json=remote_body(locked, name='locked', lock_days=1)).status == 201
    assert c.post('/v1/remotes', json=remote_body(plain, name='plain')).status == 201
    assert c.post('/v1/remotes',
                  json=remote_body(plain, name='nolock', lock_days=1)).status == 201
    r = c.post('/v1/remotes/locked:check')
    assert r.json['ok'] and r.json['object_lock'] is True and r.json['versioning'] is True, r
    r = c.post('/v1/remotes', json=remote_body(plain, name='x', lock_days=-1))
    assert problem(r, 400)['errors'][0]['pointer'] == '/lock_days'

    with sandbox.domain(size='64M') as dom:
        sandbox.write(dom, 0, 4 * MiB, 0x11)
        full = backup(c, dom, type='full')
        sandbox.write(dom, 8 * MiB, 1 * MiB, 0x22)
        keep(dom, 64 * MiB, str(tmp_path / 'inc.raw'))
        inc = backup(c, dom, type='incremental')

    # A lock the bucket cannot keep is refused, not silently dropped.
    job = c.wait_job(copy(c, full['domain_uuid'], full['id'], remote='nolock'))
    assert job['state'] == 'failed' and 'no object lock' in job['error']['detail'], job

    job = c.wait_job(copy(c, inc['domain_uuid'], inc['id'], remote='locked'))
    assert job['state'] == 'succeeded', job
    items = c.get('/v1/remotes/locked/backups').json['items']
    assert len(items) == 2 and all(i['retain_until'] for i in items), items
    due = items[0]['retain_until'][:10]
    obj = next(i for i in items if i['id'] == full['id'])['disks'][0]['object']
    status, body = locked.request('GET', '/' + obj + '?retention=')
    assert status == 200 and b'COMPLIANCE' in body, body
    # The service never tries to delete a locked copy early, and says until when.
    for x in (inc, full):
        r = c.delete(f'/v1/remotes/locked/backups/{x["id"]}')
        p = problem(r, 409, 'conflict')
        assert 'locked' in p['detail'] and due in p['detail'], p
    assert len(c.get('/v1/remotes/locked/backups').json['items']) == 2
    res = restore_from(c, 'locked', inc['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'l'))
    same_disk(res['disks'][0]['path'], str(tmp_path / 'inc.raw'))

    # Without a lock: a parent goes only after its children; then the bucket is empty.
    job = c.wait_job(copy(c, inc['domain_uuid'], inc['id'], remote='plain'))
    assert job['state'] == 'succeeded', job
    p = problem(c.delete(f'/v1/remotes/plain/backups/{full["id"]}'), 409)
    assert inc['id'] in p['detail'], p
    assert c.delete(f'/v1/remotes/plain/backups/{inc["id"]}').status == 204
    assert c.delete(f'/v1/remotes/plain/backups/{full["id"]}').status == 204
    problem(c.delete(f'/v1/remotes/plain/backups/{full["id"]}'), 404)
    assert c.get('/v1/remotes/plain/backups').json['items'] == []
    assert plain.keys() == {}
    r = c.get(f'/v1/domains/{full["domain_uuid"]}/backups/{full["id"]}/copies')
    # Deleted from 'plain'; 'nolock' was refused before any upload began.
    assert [i['remote'] for i in r.json['items']] == ['locked'], r.json


def test_cancelled_copy_leaves_nothing(vv_qemu, sandbox, objstore_bucket):
    b = objstore_bucket
    c = vv_qemu.client
    assert c.post('/v1/remotes', json=remote_body(b)).status == 201
    with sandbox.domain(size='64M') as dom:
        sandbox.write(dom, 0, 40 * MiB, 'random')
        full = backup(c, dom, type='full')
    job_id = copy(c, full['domain_uuid'], full['id'], bandwidth=8 * MiB)
    wait_for('a part recorded', lambda: parts_recorded(vv_qemu.db_path) >= 1, timeout=60,
             interval=0.05)
    r = c.delete(f'/v1/jobs/{job_id}')
    assert r.status in (200, 202), r
    job = c.wait_job(job_id)
    assert job['state'] == 'cancelled', job
    # The upload was aborted and forgotten: nothing half-made in the bucket or the database.
    assert b.keys() == {} and b.uploads() == []
    assert parts_recorded(vv_qemu.db_path) == 0
    r = c.get(f'/v1/domains/{full["domain_uuid"]}/backups/{full["id"]}/copies')
    assert [(i['state'], 'cancelled' in (i['error'] or '')) for i in r.json['items']] == [
        ('failed', True)], r.json


def test_what_a_copy_reads_is_kept_from_prune_and_delete(vv_qemu, sandbox, objstore_bucket,
                                                         tmp_path):
    """A copy does not hold its domain (backups go on during a long upload); the backups it
    reads are pinned instead: a delete is refused, a prune keeps them as it keeps protected
    ones, and once the copy ends the same prune merges them."""
    b = objstore_bucket
    c = vv_qemu.client
    assert c.post('/v1/remotes', json=remote_body(b)).status == 201
    with sandbox.domain(size='64M') as dom:
        sandbox.write(dom, 0, 40 * MiB, 'random')
        full = backup(c, dom, type='full')
        sandbox.write(dom, 48 * MiB, 1 * MiB, 0x22)
        inc = backup(c, dom, type='incremental')
        uuid = full['domain_uuid']
        # 1 MiB/s: the copy runs until it is cancelled below.
        job_id = copy(c, uuid, inc['id'], bandwidth=1 * MiB)
        wait_for('a part recorded', lambda: parts_recorded(vv_qemu.db_path) >= 1, timeout=60,
                 interval=0.05)
        p = problem(c.delete(f'/v1/domains/{uuid}/backups/{inc["id"]}'), 409)
        assert 'being copied' in p['detail'], p
        p = problem(c.delete(f'/v1/domains/{uuid}/backups/{full["id"]}?chain=true'), 409)
        assert 'being copied' in p['detail'], p

        # Backups of the domain go on meanwhile.
        sandbox.write(dom, 56 * MiB, 1 * MiB, 0x33)
        keep(dom, 64 * MiB, str(tmp_path / 'inc2.raw'))
        inc2 = backup(c, dom, type='incremental')
    r = c.post(f'/v1/domains/{uuid}/backups:prune', json={'retention': {'keep_last': 1}})
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    assert job['result']['remove'] == [] and job['result']['merge'] == [], job['result']
    assert c.get(f'/v1/jobs/{job_id}').json['state'] == 'running'
    ids = [x['id'] for x in c.get(f'/v1/domains/{uuid}/backups?state=completed').json['items']]
    assert ids == [inc2['id'], inc['id'], full['id']], ids

    assert c.delete(f'/v1/jobs/{job_id}').status in (200, 202)
    assert c.wait_job(job_id)['state'] == 'cancelled'
    # The copy ended: the same retention now merges the chain into the newest backup.
    r = c.post(f'/v1/domains/{uuid}/backups:prune', json={'retention': {'keep_last': 1}})
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    assert job['result']['remove'] == [inc['id'], full['id']], job['result']
    ids = [x['id'] for x in c.get(f'/v1/domains/{uuid}/backups?state=completed').json['items']]
    assert ids == [inc2['id']], ids
    job = c.wait_job(copy(c, uuid, inc2['id']))
    assert job['state'] == 'succeeded', job
    res = restore_from(c, 'off', inc2['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'p'))
    same_disk(res['disks'][0]['path'], str(tmp_path / 'inc2.raw'))
