"""Policies that copy offsite (copy_to) and the retention of the remote (remote_retention)
against a real object store (objstore.py: a Ceph RADOS Gateway, a bucket per test) and real
QEMU through the sandbox:

- a policy run four times (a full, then incrementals) leaves exactly the two newest backups in
  the bucket, the older of them merged into a full by upload, nothing unreferenced, each
  restored byte-identical by a second daemon with an empty database;
- with object lock: policy copies are locked for what the remote retention keeps the newest
  for sure (keep_last x the schedule's period), never deleted early (409 with the due date, a
  prune holds them and says until when), and pruned (merged) once due;
- bad input names the field and changes nothing;
- a policy copy cut by a crash (the store held mid-upload by a relay, the daemon killed) goes
  on after the restart and is followed to its remote retention; a run's backup stored as
  pending is copied as soon as the daemon is back;
- a remote retention that fails (the store refuses deletes) shows on the member, and the next
  copy's prune does what was left.
"""
import json
import os
import re
import sqlite3
import time

from helpers import MiB, backup, keep, problem, same_disk, wait_for
from test_offsite import no_leftovers, parts_recorded, remote_body, restore_from


def ts(s):
    import datetime
    return datetime.datetime.fromisoformat(s.replace('Z', '+00:00')).timestamp()


def jobs(c, kind, policy):
    r = c.get('/v1/jobs?limit=1000')
    assert r.status == 200, r
    return [j for j in r.json['items'] if j['kind'] == kind and j.get('policy') == policy]


def ended(c, kind, policy):
    return [j for j in jobs(c, kind, policy) if j['state'] not in ('queued', 'running')]


def in_flight(c, policy):
    r = c.get('/v1/jobs?limit=1000')
    return [j for j in r.json['items'] if j.get('policy') == policy and
            j['state'] in ('queued', 'running')]


def bucket_backups(c, remote):
    r = c.get(f'/v1/remotes/{remote}/backups')
    assert r.status == 200, r
    return r.json['items']


def referenced_only(bucket, c, remote):
    """Every object in the bucket is a manifest or an object a manifest names."""
    items = bucket_backups(c, remote)
    named = {d['object'] for i in items for d in i['disks']}
    for k in bucket.keys():
        assert k.endswith('/manifest.json') or k in named, f'{k} is named by no manifest'
    no_leftovers(bucket)


def run_and_settle(c, policy, n_copies):
    """Waits until the policy's n-th copy and the remote prune after it have ended."""
    wait_for(f'copy {n_copies}', lambda: len([j for j in ended(c, 'backup_copy', policy)
                                              if j['state'] == 'succeeded']) >= n_copies,
             timeout=60)
    wait_for(f'remote prune {n_copies}',
             lambda: len(ended(c, 'offsite_prune', policy)) >= n_copies, timeout=60)
    wait_for('nothing of the policy in flight', lambda: not in_flight(c, policy), timeout=60)
    for j in ended(c, 'offsite_prune', policy):
        assert j['state'] == 'succeeded', j


def copy_policy(c, name, dom, **kw):
    """Makes policy name over dom that copies to remote 'off' on a yearly slot (it runs only
    when asked to, :run), with kw added to its body; waits for dom to join it."""
    body = {'name': name, 'domains': [dom], 'schedule': '0 0 1 1 *',
            'backup': {'type': 'auto'}, 'copy_to': 'off'}
    body.update(kw)
    r = c.post('/v1/policies', json=body)
    assert r.status == 201, r
    wait_for('the member', lambda: [x for x in c.get(f'/v1/policies/{name}').json['members']
                                    if x['domain'] == dom], timeout=20)
    return r.json


def test_policy_copies_and_remote_retention(vv_qemu, make_daemon, sandbox, objstore_bucket,
                                            tmp_path):
    b = objstore_bucket
    c = vv_qemu.client
    assert c.post('/v1/remotes', json=remote_body(b)).status == 201
    size = 64 * MiB
    refs = []
    with sandbox.domain(size='64M') as dom:
        pol = copy_policy(c, 'off2', dom, remote_retention={'keep_last': 2})
        assert pol['copy_to'] == 'off' and pol['remote_retention'] == {'keep_last': 2}
        for k in range(4):
            sandbox.write(dom, k * 8 * MiB, 2 * MiB, 0x31 + k)
            keep(dom, size, str(tmp_path / f'r{k}.raw'))
            refs.append(str(tmp_path / f'r{k}.raw'))
            assert c.post('/v1/policies/off2:run').status == 202
            run_and_settle(c, 'off2', k + 1)
        local = sorted(c.get(f'/v1/domains/{dom}/backups?state=completed').json['items'],
                       key=lambda x: x['started_at'])
        assert len(local) == 4, local
        assert [x['type'] for x in local] == ['full'] + ['incremental'] * 3, local
        uuid = local[0]['domain_uuid']
        m = [x for x in c.get('/v1/policies/off2').json['members'] if x['domain'] == dom][0]
        assert m['last_run']['result'] == 'succeeded', m

    # Exactly the two newest in the bucket, nothing unreferenced.
    items = {i['id']: i for i in bucket_backups(c, 'off')}
    assert sorted(items) == sorted(x['id'] for x in local[2:]), json.dumps({
        'local': [(x['id'], x['type'], x['parent_id']) for x in local],
        'bucket': [(i['id'], i['type'], i['parent_id']) for i in items.values()],
        'copies': [j['result'] for j in ended(c, 'backup_copy', 'off2')],
        'prunes': [j['result'] for j in ended(c, 'offsite_prune', 'off2')]})
    referenced_only(b, c, 'off')
    last = ended(c, 'offsite_prune', 'off2')
    res = max(last, key=lambda j: j['finished_at'])['result']
    assert res["remove"] == [local[1]["id"]] and res["removed"] == 1, res
    assert res['merge'] == [{'into': local[2]['id'], 'from': [local[1]['id']], 'onto': None}]
    assert sorted(res['keep']) == sorted(x['id'] for x in local[2:]), res
    # The older kept one was merged into a full under a new object; the newer stands on it.
    merged = items[local[2]['id']]
    assert merged['type'] == 'full' and merged['parent_id'] is None, merged
    assert merged['disks'][0]['object'].endswith('.qcow2.zst') and \
        merged['disks'][0]['object'] != f'site/a/{uuid}/{local[2]["id"]}/vda.qcow2.zst', merged
    m = json.loads(b.get(f'site/a/{uuid}/{local[2]["id"]}/manifest.json'))
    assert m['disks'][0].get('backing') is None and m.get('parent_id') is None, m
    assert m['disks'][0]['checksum_algorithm'] == 'sha256-pieces-8MiB', m
    assert items[local[3]['id']]['parent_id'] == local[2]['id']
    # A dry run of a tighter retention plans without changing anything.
    r = c.post('/v1/remotes/off/backups:prune',
               json={'domain': uuid, 'retention': {'keep_last': 1}, 'dry_run': True})
    assert r.status == 200, r
    assert r.json['dry_run'] is True and r.json['remove'] == [local[2]['id']], r.json
    assert r.json['keep'] == [local[3]['id']] and r.json['held'] == [], r.json
    assert r.json['merge'] == [{'into': local[3]['id'], 'from': [local[2]['id']],
                                'onto': None}], r.json
    assert len(bucket_backups(c, 'off')) == 2
    # Two prunes at once: the later one waits for the first; both end well, nothing changes.
    ids = []
    for _ in range(2):
        r = c.post('/v1/remotes/off/backups:prune',
                   json={'domain': uuid, 'retention': {'keep_last': 2}})
        assert r.status == 202 and r.json['kind'] == 'offsite_prune', r
        ids.append(r.json['id'])
    for j in ids:
        job = c.wait_job(j)
        assert job['state'] == 'succeeded' and job['result']['remove'] == [], job
    assert sorted(i['id'] for i in bucket_backups(c, 'off')) == sorted(items)

    # Another host with an empty database restores each kept one byte-identical.
    d2 = make_daemon('qemu:///system').start()
    d2.wait_ready()
    c2 = d2.client
    assert c2.post('/v1/remotes', json=remote_body(b)).status == 201
    root = os.path.join(d2.vault_dir, 'restore')
    for k in (2, 3):
        res = restore_from(c2, 'off', local[k]['id'], os.path.join(root, str(k)))
        same_disk(res['disks'][0]['path'], refs[k])


def test_locked_policy_copies(vv_qemu, sandbox, objstore, tmp_path):
    c = vv_qemu.client
    locked = objstore.bucket(object_lock=True)
    assert c.post('/v1/remotes',
                  json=remote_body(locked, name='locked', lock_days=1)).status == 201
    with sandbox.domain(size='64M') as dom:
        sandbox.write(dom, 0, 4 * MiB, 0x44)
        keep(dom, 64 * MiB, str(tmp_path / 'ref.raw'))
        # Every 10 s, keep_last 2: each copy is locked for 20 s.
        r = c.post('/v1/policies', json={
            'name': 'lk', 'domains': [dom], 'schedule': {'interval_seconds': 10},
            'backup': {'type': 'auto'}, 'copy_to': 'locked',
            'remote_retention': {'keep_last': 2}})
        assert r.status == 201, r
        wait_for('three policy copies', lambda: len([
            j for j in ended(c, 'backup_copy', 'lk') if j['state'] == 'succeeded']) >= 3,
            timeout=60)
        r = c.put('/v1/policies/lk', json={
            'domains': [dom], 'schedule': {'interval_seconds': 10}, 'backup': {'type': 'auto'},
            'copy_to': 'locked', 'remote_retention': {'keep_last': 2}, 'enabled': False})
        assert r.status == 200, r
        wait_for('nothing of the policy in flight', lambda: not in_flight(c, 'lk'), timeout=60)

    items = bucket_backups(c, 'locked')
    assert len(items) >= 3, items
    uuid = items[0]['domain_uuid']
    for i in items:
        span = ts(i['retain_until']) - ts(i['copied_at'])
        assert 18 <= span <= 22, (span, i)
    newest = max(items, key=lambda i: i['started_at'])
    status, body = locked.request('GET', '/' + newest['disks'][0]['object'] + '?retention=')
    assert status == 200 and b'COMPLIANCE' in body, body
    assert newest['retain_until'][:19].encode() in body, (newest['retain_until'], body)

    # Never deleted early: 409 with the due date.
    p = problem(c.delete(f'/v1/remotes/locked/backups/{newest["id"]}'), 409, 'conflict')
    assert 'locked' in p['detail'] and newest['retain_until'][:10] in p['detail'], p
    # A prune before due holds what is locked and says until when.
    r = c.post('/v1/remotes/locked/backups:prune?wait=30',
               json={'domain': uuid, 'retention': {'keep_last': 1}})
    assert r.status == 200 and r.json['state'] == 'succeeded', r
    res = r.json['result']
    assert newest['id'] in [h['id'] for h in res['held']], res
    assert all(h['retain_until'] for h in res['held'])
    after = bucket_backups(c, 'locked')
    for i in after:
        assert i['id'] in res['keep']
    still = [i for i in after if ts(i['retain_until']) > time.time() + 1]
    assert newest['id'] in [i['id'] for i in still]

    # Once due, the prune removes what the retention does not keep.
    due = max(ts(i['retain_until']) for i in after)
    wait_for('every lock due', lambda: time.time() > due + 1, timeout=40, interval=0.5)
    r = c.post('/v1/remotes/locked/backups:prune?wait=30',
               json={'domain': uuid, 'retention': {'keep_last': 2}})
    assert r.status == 200 and r.json['state'] == 'succeeded', r
    res = r.json['result']
    assert res['held'] == [] and len(res['keep']) == 2, res
    assert res['merged'] == 1 and res['merge'][0]['onto'] is None, res
    left = bucket_backups(c, 'locked')
    assert sorted(i['id'] for i in left) == sorted(res['keep'])
    oldest = min(left, key=lambda i: i['started_at'])
    assert oldest['type'] == 'full' and oldest['parent_id'] is None, oldest
    for i in left:
        out = restore_from(c, 'locked', i['id'],
                           os.path.join(vv_qemu.vault_dir, 'restore', i['id']))
        same_disk(out['disks'][0]['path'], str(tmp_path / 'ref.raw'))


def test_bad_policy_copy_input(vv_test, objstore_bucket):
    c = vv_test.client
    assert c.post('/v1/remotes', json=remote_body(objstore_bucket)).status == 201
    base = {'name': 'p', 'domains': ['test'], 'schedule': '@daily'}
    for bad, status, pointer in [
        ({'copy_to': 'nope'}, 404, '/copy_to'),
        ({'copy_to': 'a b'}, 400, '/copy_to'),
        ({'copy_to': 7}, 400, '/copy_to'),
        ({'copy_to': 'off', 'remote_retention': {'keep_last': -1}}, 400,
         '/remote_retention/keep_last'),
        ({'copy_to': 'off', 'remote_retention': {'keep_often': 1}}, 400,
         '/remote_retention/keep_often'),
        ({'copy_to': 'off', 'remote_retention': []}, 400, '/remote_retention'),
        ({'remote_retention': {'keep_last': 1}}, 400, '/remote_retention'),
    ]:
        r = c.post('/v1/policies', json={**base, **bad})
        p = problem(r, status)
        assert p['errors'][0]['pointer'] == pointer, (bad, p)
    assert c.get('/v1/policies/p').status == 404
    # A stored policy is left as it was by a bad change.
    r = c.post('/v1/policies', json={**base, 'copy_to': 'off',
                                     'remote_retention': {'keep_daily': 3}})
    assert r.status == 201, r
    r = c.put('/v1/policies/p', json={'domains': ['test'], 'schedule': '@daily',
                                      'copy_to': 'gone'})
    assert problem(r, 404)['errors'][0]['pointer'] == '/copy_to'
    got = c.get('/v1/policies/p').json
    assert got['copy_to'] == 'off' and got['remote_retention'] == {'keep_daily': 3}, got
    # The explicit prune: bad bodies name the field.
    for body, pointer in [
        ({'retention': {'keep_last': 1}}, '/domain'),
        ({'domain': 'x'}, '/retention'),
        ({'domain': 'x', 'retention': {'keep_last': 'a'}}, '/retention/keep_last'),
        ({'domain': 'x', 'retention': {}, 'dry_run': 'yes'}, '/dry_run'),
    ]:
        r = c.post('/v1/remotes/off/backups:prune', json=body)
        assert problem(r, 400)['errors'][0]['pointer'] == pointer, (body, r.json)
    r = c.post('/v1/remotes/off/backups:prune', json={'domain': 'x', 'retention': {}})
    assert problem(r, 404)['errors'][0]['pointer'] == '/domain'
    problem(c.post('/v1/remotes/nope/backups:prune', json={'domain': 'x', 'retention': {}}), 404)
    assert json.dumps(objstore_bucket.keys()) == '{}'


def test_failed_policy_copy_shows_and_the_next_run_copies_again(vv_qemu, sandbox,
                                                                objstore_bucket):
    b = objstore_bucket
    c = vv_qemu.client
    # A wrong secret: every request to the bucket is refused.
    assert c.post('/v1/remotes', json=remote_body(b, secret='wrong-secret')).status == 201
    with sandbox.domain(size='64M') as dom:
        sandbox.write(dom, 0, 2 * MiB, 0x55)
        copy_policy(c, 'cf', dom)
        assert c.post('/v1/policies/cf:run').status == 202

        def last_run():
            m = [x for x in c.get('/v1/policies/cf').json['members'] if x['domain'] == dom][0]
            return m['last_run'] or {}
        run = wait_for('the copy to fail', lambda: (lambda r: r if r.get('result') ==
                                                    'copy_failed' else None)(last_run()),
                       timeout=60)
        assert "to remote 'off' failed" in run['detail'] and 'HTTP 403' in run['detail'], run
        job = c.get(f'/v1/jobs/{run["job_id"]}').json
        assert job['kind'] == 'backup_copy' and job['state'] == 'failed', job
        assert b.keys() == {}

        # The right secret; the next run copies its backup and the one the failed copy missed.
        upd = remote_body(b)
        del upd['name']
        assert c.put('/v1/remotes/off', json=upd).status == 200
        sandbox.write(dom, 8 * MiB, 2 * MiB, 0x66)
        assert c.post('/v1/policies/cf:run').status == 202
        wait_for('a copy that succeeded', lambda: [
            j for j in ended(c, 'backup_copy', 'cf') if j['state'] == 'succeeded'], timeout=60)
        wait_for('nothing of the policy in flight', lambda: not in_flight(c, 'cf'), timeout=60)
        assert last_run()['result'] == 'succeeded', last_run()
        local = c.get(f'/v1/domains/{dom}/backups?state=completed').json['items']
    assert sorted(i['id'] for i in bucket_backups(c, 'off')) == sorted(x['id'] for x in local)
    assert len(local) == 2
    referenced_only(b, c, 'off')


def test_prune_killed_mid_merge_leaves_the_chain_whole(vv_qemu, sandbox, objstore_bucket,
                                                       tmp_path):
    b = objstore_bucket
    c = vv_qemu.client
    assert c.post('/v1/remotes', json=remote_body(b)).status == 201
    with sandbox.domain(size='64M') as dom:
        sandbox.write(dom, 0, 48 * MiB, 'random')
        full = backup(c, dom, type='full')
        sandbox.write(dom, 50 * MiB, 2 * MiB, 0x77)
        keep(dom, 64 * MiB, str(tmp_path / 'inc.raw'))
        inc = backup(c, dom, type='incremental')
    r = c.post(f'/v1/domains/{inc["domain_uuid"]}/backups/{inc["id"]}/copies',
               json={'remote': 'off'})
    assert r.status == 202 and c.wait_job(r.json['id'])['state'] == 'succeeded', r
    uuid = inc['domain_uuid']
    staging = os.path.join(vv_qemu.dir, 'offsite-prune')

    # Killed while the merge of inc into a full is under way (its chain being fetched).
    r = c.post('/v1/remotes/off/backups:prune',
               json={'domain': uuid, 'retention': {'keep_last': 1}})
    assert r.status == 202, r
    job_id = r.json['id']
    wait_for('the merge under way', lambda: os.path.isdir(staging) and os.listdir(staging),
             timeout=60, interval=0.02)
    vv_qemu.kill()
    vv_qemu.start()
    vv_qemu.wait_ready()
    assert os.listdir(staging) == []  # the stale staging folder is gone
    assert c.get(f'/v1/jobs/{job_id}').json['state'] == 'failed'
    # Both backups are still in the bucket, the chain whole: inc restores as it was.
    assert sorted(i['id'] for i in bucket_backups(c, 'off')) == sorted([full['id'], inc['id']])
    res = restore_from(c, 'off', inc['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'a'))
    same_disk(res['disks'][0]['path'], str(tmp_path / 'inc.raw'))

    # Killed again while the merged image is being uploaded (a part recorded).
    r = c.post('/v1/remotes/off/backups:prune',
               json={'domain': uuid, 'retention': {'keep_last': 1}})
    assert r.status == 202, r
    job_id = r.json['id']
    wait_for('a part of the merged image recorded',
             lambda: parts_recorded(vv_qemu.db_path) >= 1 or
             c.get(f'/v1/jobs/{job_id}').json['state'] != 'running', timeout=60, interval=0.01)
    killed_mid_upload = parts_recorded(vv_qemu.db_path) >= 1
    vv_qemu.kill()
    vv_qemu.start()
    vv_qemu.wait_ready()
    if killed_mid_upload:
        assert b.uploads(), 'the interrupted upload should be in the bucket'
        assert sorted(i['id'] for i in bucket_backups(c, 'off')) == sorted([full['id'],
                                                                             inc['id']])
        res = restore_from(c, 'off', inc['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'c'))
        same_disk(res['disks'][0]['path'], str(tmp_path / 'inc.raw'))

    # The next prune does what is left and sweeps; nothing unreferenced is left.
    r = c.post('/v1/remotes/off/backups:prune?wait=60',
               json={'domain': uuid, 'retention': {'keep_last': 1}})
    assert r.status == 200 and r.json['state'] == 'succeeded', r
    if killed_mid_upload:
        assert r.json['result']['merged'] == 1 and r.json['result']['removed'] == 1, r.json
        assert r.json['result']['swept'], r.json
    (only,) = bucket_backups(c, 'off')
    assert only['id'] == inc['id'] and only['type'] == 'full' and only['parent_id'] is None
    referenced_only(b, c, 'off')
    res = restore_from(c, 'off', inc['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'b'))
    same_disk(res['disks'][0]['path'], str(tmp_path / 'inc.raw'))



class HoldingProxy:
    """A TCP relay to the object store that can hold the requests that write (PUT, POST) from
    hold() until let_go(): an upload through it then hangs, as to a store that stopped
    answering, while reads go on. With refuse_deletes set, it answers each DELETE itself with
    403, as a store whose policy forbids deletes."""

    def __init__(self, endpoint):
        import socket
        import threading
        import urllib.parse
        u = urllib.parse.urlsplit(endpoint)
        self.upstream = (u.hostname, u.port)
        self.go = threading.Event()
        self.go.set()
        self.held = 0
        self.refuse_deletes = False
        self.srv = socket.create_server(('127.0.0.1', 0))
        self.endpoint = f'{u.scheme}://127.0.0.1:{self.srv.getsockname()[1]}'
        self.threading = threading
        threading.Thread(target=self._accept, daemon=True).start()

    def _pump(self, src, dst, to_store):
        try:
            while (data := src.recv(65536)):
                if to_store and self.refuse_deletes and data.startswith(b'DELETE '):
                    src.sendall(b'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n')
                    continue
                if to_store and not self.go.is_set() and data.startswith((b'PUT ', b'POST ')):
                    self.held += 1
                    self.go.wait()
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        import socket
        while True:
            try:
                client, _ = self.srv.accept()
                up = socket.create_connection(self.upstream)
            except OSError:
                return
            for a, b, to_store in ((client, up, True), (up, client, False)):
                self.threading.Thread(target=self._pump, args=(a, b, to_store),
                                      daemon=True).start()

    def hold(self):
        self.held = 0
        self.go.clear()

    def let_go(self):
        self.go.set()

    def close(self):
        self.go.set()
        self.srv.close()


def test_a_policy_copy_cut_by_a_crash_is_followed_after_the_restart(make_daemon, sandbox,
                                                                     objstore_bucket):
    """A policy's copy job the daemon did not finish (killed mid-upload) goes on after the
    restart, and the policy follows it to its end: the remote retention is applied after it,
    as after any copy, and nothing is copied twice."""
    b = objstore_bucket
    proxy = HoldingProxy(b.endpoint)
    d = make_daemon('qemu:///system').start()
    d.wait_ready()
    c = d.client
    try:
        assert c.post('/v1/remotes', json=remote_body(b, endpoint=proxy.endpoint)).status == 201
        with sandbox.domain(size='64M') as dom:
            sandbox.write(dom, 0, 4 * MiB, 0x5a)
            copy_policy(c, 'cc', dom, remote_retention={'keep_last': 5})
            proxy.hold()
            assert c.post('/v1/policies/cc:run').status == 202
            (copy,) = wait_for('the copy hanging on the store', lambda: proxy.held and [
                j for j in jobs(c, 'backup_copy', 'cc') if j['state'] == 'running'], timeout=60)
            d.kill()
            proxy.let_go()
            d.start()
            d.wait_ready()
            (local,) = c.get(f'/v1/domains/{dom}/backups?state=completed').json['items']
            assert c.wait_job(copy['id'])['state'] == 'succeeded'
            # The policy saw the copy end: its remote retention ran after it.
            (prune,) = wait_for('the remote retention', lambda: ended(c, 'offsite_prune', 'cc'),
                                timeout=60)
            assert prune['state'] == 'succeeded' and prune['result']['keep'] == [local['id']], \
                prune
            assert [i['id'] for i in bucket_backups(c, 'off')] == [local['id']]
            # One run, one copy job.
            assert [j['state'] for j in jobs(c, 'backup', 'cc')] == ['succeeded']
            assert [j['id'] for j in jobs(c, 'backup_copy', 'cc')] == [copy['id']]
            m = [x for x in c.get('/v1/policies/cc').json['members'] if x['domain'] == dom][0]
            assert m['last_run']['result'] == 'succeeded', m
            # Once copied, a restart copies nothing again.
            d.restart()
            d.wait_ready()
            wait_for('a pass of the scheduler', lambda: re.search(
                r'^virtvault_policy_tick_seconds_count [1-9]', c.get('/metrics').raw.decode(),
                re.M), timeout=60)
            assert not in_flight(c, 'cc') and len(jobs(c, 'backup_copy', 'cc')) == 1
            # Stopped after a run stored its backup as pending, before its copy started: the
            # copy starts as soon as the daemon is back.
            d.stop()
            with sqlite3.connect(d.db_path) as db:
                db.execute('UPDATE policy_members SET copy_pending = ? WHERE policy = ?',
                           (local['id'], 'cc'))
            d.start()
            d.wait_ready()
            wait_for('a second copy', lambda: len([j for j in ended(c, 'backup_copy', 'cc')
                                                   if j['state'] == 'succeeded']) == 2,
                     timeout=60)
            wait_for('nothing of the policy in flight', lambda: not in_flight(c, 'cc'),
                     timeout=60)
            with sqlite3.connect(d.db_path) as db:
                assert db.execute('SELECT copy_pending, copy_job FROM policy_members WHERE '
                                  'policy = ?', ('cc',)).fetchall() == [(None, None)]
        referenced_only(b, c, 'off')
    finally:
        proxy.close()


def test_a_failed_remote_retention_shows_on_the_member(make_daemon, sandbox, objstore_bucket):
    """A remote retention that fails after a policy's copy (the store refuses deletes) reads
    remote_prune_failed on the member, with its job; the bucket's chain stays whole, and the
    next copy's prune does what was left."""
    b = objstore_bucket
    proxy = HoldingProxy(b.endpoint)
    d = make_daemon('qemu:///system').start()
    d.wait_ready()
    c = d.client

    def last_run():
        r = c.get('/v1/policies/rp')
        assert r.status == 200, r
        return r.json['members'][0]['last_run'] or {}
    try:
        assert c.post('/v1/remotes', json=remote_body(b, endpoint=proxy.endpoint)).status == 201
        with sandbox.domain(size='64M') as dom:
            copy_policy(c, 'rp', dom, remote_retention={'keep_last': 1})
            sandbox.write(dom, 0, 2 * MiB, 0x41)
            assert c.post('/v1/policies/rp:run').status == 202
            run_and_settle(c, 'rp', 1)
            assert last_run()['result'] == 'succeeded', last_run()

            proxy.refuse_deletes = True
            sandbox.write(dom, 8 * MiB, 2 * MiB, 0x42)
            assert c.post('/v1/policies/rp:run').status == 202
            run = wait_for('the failure on the member', lambda: (
                lambda r: r if r.get('result') == 'remote_prune_failed' else None)(last_run()),
                timeout=120)
            assert "the remote retention of remote 'off' failed" in run['detail'], run
            job = c.get(f'/v1/jobs/{run["job_id"]}').json
            assert job['kind'] == 'offsite_prune' and job['state'] == 'failed', job
            assert job['policy'] == 'rp', job
            local = sorted(c.get(f'/v1/domains/{dom}/backups?state=completed').json['items'],
                           key=lambda x: x['started_at'])
            assert len(local) == 2
            assert sorted(i['id'] for i in bucket_backups(c, 'off')) == \
                sorted(x['id'] for x in local)

            # Deletes allowed again: the next copy's prune removes what was left.
            proxy.refuse_deletes = False
            sandbox.write(dom, 16 * MiB, 2 * MiB, 0x43)
            assert c.post('/v1/policies/rp:run').status == 202
            wait_for('the third prune', lambda: len(ended(c, 'offsite_prune', 'rp')) == 3,
                     timeout=120)
            wait_for('nothing of the policy in flight', lambda: not in_flight(c, 'rp'),
                     timeout=60)
            assert last_run()['result'] == 'succeeded', last_run()
            newest = max(c.get(f'/v1/domains/{dom}/backups?state=completed').json['items'],
                         key=lambda x: x['started_at'])
        assert [i['id'] for i in bucket_backups(c, 'off')] == [newest['id']]
        referenced_only(b, c, 'off')
    finally:
        proxy.close()
