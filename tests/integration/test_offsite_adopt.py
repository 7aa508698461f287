"""Chains that survive a move: a domain that comes back to a host (same UUID) with the dirty
bitmaps of its checkpoints in its images but without their metadata, and a host with a new,
empty database, gets its checkpoints back from the manifests in a remote's bucket (a real Ceph
RADOS Gateway, objstore.py; real QEMU through the sandbox):

- its next `auto` backup is an incremental on the bucket's newest backup, its copy uploads only
  itself, and it restores byte-identical from the bucket on a host with an empty database;
- the adopted backups are offsite only: local restore, verify and mount answer 409 naming the
  remote; a local restore of the new backup downloads what it stands on from the bucket;
- a domain whose bitmaps are gone, or whose disk was resized, adopts nothing: the adoption
  answers 409 with the reason, leaves nothing behind, and an auto backup is a full that says why;
- a host whose database alone is new (libvirt kept the checkpoints) adopts them too;
- a shut-off domain adopts its chain from the bitmaps in its images (the route); its backups,
  read through qemu-nbd, do not stand on an offsite-only parent: auto is a full saying why.
"""
import os

from helpers import MiB, backup, checkpoints, keep, problem, same_disk, virsh
from test_checkpoints import stop_domain
from test_offsite import copy, remote_body, restore_from

SIZE = 64 * MiB


def daemon(make_daemon, bucket):
    """A daemon with an empty database and vault and the bucket as remote 'off'."""
    d = make_daemon('qemu:///system').start()
    d.wait_ready()
    r = d.client.post('/v1/remotes', json=remote_body(bucket))
    assert r.status == 201, r
    return d


def rebirth(dom, tmp_path, drop_bitmaps=False):
    """The domain as a new host sees it: libvirt's checkpoint metadata gone (with drop_bitmaps
    the bitmaps in the images too), the domain undefined and defined again from the same XML
    (same UUID) while QEMU runs on."""
    xml = tmp_path / f'{dom}.xml'
    xml.write_text(virsh('dumpxml', '--inactive', dom).stdout)
    for root in virsh('checkpoint-list', dom, '--roots', '--name').stdout.split():
        args = ['checkpoint-delete', dom, root, '--children']
        virsh(*(args if drop_bitmaps else args + ['--metadata']))
    assert checkpoints(dom) == []
    virsh('undefine', dom)
    virsh('define', str(xml))


def first_chain(make_daemon, sandbox, bucket, dom, tmp_path):
    """Daemon 1: a full and an incremental of dom, both copied to the bucket; then stopped."""
    d1 = daemon(make_daemon, bucket)
    c1 = d1.client
    sandbox.write(dom, 0, 8 * MiB, 0xa1)
    full = backup(c1, dom, type='auto')
    assert full['type'] == 'full' and full['location'] == 'local' and full['remote'] is None
    sandbox.write(dom, 16 * MiB, 4 * MiB, 'random')
    inc = backup(c1, dom, type='incremental')
    assert inc['parent_id'] == full['id']
    job = c1.wait_job(copy(c1, dom, inc['id']))
    assert job['state'] == 'succeeded', job
    assert d1.stop() == 0
    return full, inc


def test_chain_adopted_from_the_bucket(make_daemon, sandbox, objstore_bucket, tmp_path):
    b = objstore_bucket
    with sandbox.domain(size='64M') as dom:
        full, inc = first_chain(make_daemon, sandbox, b, dom, tmp_path)
        uuid = full['domain_uuid']
        rebirth(dom, tmp_path)
        sandbox.write(dom, 32 * MiB, 4 * MiB, 0xc3)
        keep(dom, SIZE, str(tmp_path / 'c.raw'))

        # Daemon 2: a new empty database and vault. Its first auto backup adopts the chain.
        d2 = daemon(make_daemon, b)
        c2 = d2.client
        before = set(b.keys())
        nxt = backup(c2, dom, type='auto')
        assert nxt['type'] == 'incremental', nxt
        assert nxt['parent_id'] == inc['id'] and nxt['chain_id'] == full['chain_id'], nxt
        assert nxt['base_checkpoint'] == inc['checkpoint']
        assert nxt['location'] == 'local' and nxt['disks'][0]['backing'] == \
            os.path.basename(inc['disks'][0]['file'])
        items = c2.get(f'/v1/domains/{dom}/backups').json['items']
        assert {i['id']: (i['state'], i['location'], i['remote']) for i in items} == {
            full['id']: ('completed', 'remote', 'off'),
            inc['id']: ('completed', 'remote', 'off'),
            nxt['id']: ('completed', 'local', None)}
        # The chain's checkpoints are libvirt's and the store's again, parents first.
        assert sorted(checkpoints(dom)) == sorted(
            [full['checkpoint'], inc['checkpoint'], nxt['checkpoint']])
        assert virsh('checkpoint-parent', dom, inc['checkpoint']).stdout.strip() == \
            full['checkpoint']
        stored = c2.get(f'/v1/domains/{dom}/checkpoints').json['items']
        names = [x['name'] for x in stored]
        assert names == [full['checkpoint'], inc['checkpoint'], nxt['checkpoint']], stored
        # Nothing was read from the bucket's images: only the new backup's image is local.
        vault_files = [f for _, _, fs in os.walk(d2.vault_dir) for f in fs
                       if f.endswith('.qcow2')]
        assert vault_files == [os.path.basename(nxt['disks'][0]['file'])], vault_files

        # Offsite only: local restore, verify and mount say where the images are.
        root = os.path.join(d2.vault_dir, 'restore')
        for path, body in [(f'backups/{inc["id"]}/restore',
                            {'target_dir': os.path.join(root, 'x'), 'format': 'raw'}),
                           (f'backups/{full["id"]}/verify', None),
                           (f'backups/{inc["id"]}/mounts', {})]:
            r = c2.post(f'/v1/domains/{dom}/{path}', json=body)
            problem(r, 409)
            assert "remote 'off'" in r.json['detail'], r.json
            assert '/v1/remotes/off/backups/' in r.json['detail'], r.json
        # The new backup verifies: its own image, its backing file being in the bucket.
        r = c2.post(f'/v1/domains/{dom}/backups/{nxt["id"]}/verify')
        assert r.status == 202, r
        job = c2.wait_job(r.json['id'])
        assert job['state'] == 'succeeded' and job['result']['ok'] is True, job
        # Its local restore downloads what it stands on from the bucket: byte-identical, and
        # only the restored image is left.
        r = c2.post(f'/v1/domains/{dom}/backups/{nxt["id"]}/restore',
                    json={'target_dir': os.path.join(root, 'l'), 'format': 'raw'})
        assert r.status == 202, r
        job = c2.wait_job(r.json['id'])
        assert job['state'] == 'succeeded', job
        same_disk(job['result']['disks'][0]['path'], str(tmp_path / 'c.raw'))
        assert os.listdir(os.path.join(root, 'l')) == [
            os.path.basename(job['result']['disks'][0]['path'])]
        # Mounting it reads the vault alone: 409 naming the remote.
        r = c2.post(f'/v1/domains/{dom}/backups/{nxt["id"]}/mounts', json={})
        problem(r, 409)
        assert "remote 'off'" in r.json['detail'], r.json

        # Its copy uploads only itself: one manifest and one image.
        job = c2.wait_job(copy(c2, dom, nxt['id']))
        assert job['state'] == 'succeeded', job
        got = {x['id']: x['uploaded'] for x in job['result']['backups']}
        # The copy starts at the newest ancestor the bucket holds.
        assert got == {inc['id']: False, nxt['id']: True}, job
        new = set(b.keys()) - before
        base = f'site/a/{uuid}/{nxt["id"]}/'
        assert new == {base + 'manifest.json', base + 'vda.qcow2.zst'}, new

        # A third host with an empty database restores it from the bucket, byte-identical.
        d3 = daemon(make_daemon, b)
        res = restore_from(d3.client, 'off', nxt['id'],
                           os.path.join(d3.vault_dir, 'restore', 'n'))
        same_disk(res['disks'][0]['path'], str(tmp_path / 'c.raw'))
        # And so does this host, from the bucket.
        res = restore_from(c2, 'off', nxt['id'], os.path.join(root, 'n'))
        same_disk(res['disks'][0]['path'], str(tmp_path / 'c.raw'))

        # Adopting again: the catalog holds the domain's chain already.
        r = c2.post(f'/v1/domains/{dom}/checkpoints:adopt', json={'remote': 'off'})
        problem(r, 409)
        assert 'local catalog' in r.json['detail'], r.json

        # A local retention keeps the chain that stands on the bucket whole: a merge would
        # read through to images that are not here.
        nxt2 = backup(c2, dom, type='auto')
        assert nxt2['parent_id'] == nxt['id'], nxt2
        r = c2.post(f'/v1/domains/{dom}/backups:prune', json={'retention': {'keep_last': 1}})
        assert r.status == 202, r
        job = c2.wait_job(r.json['id'])
        assert job['state'] == 'succeeded', job
        assert job['result']['remove'] == [] and job['result']['merge'] == [], job['result']
        ids = {i['id'] for i in c2.get(f'/v1/domains/{dom}/backups').json['items']}
        assert ids == {full['id'], inc['id'], nxt['id'], nxt2['id']}, ids


def test_no_adoption_across_a_mismatch(make_daemon, sandbox, objstore_bucket, tmp_path):
    b = objstore_bucket
    with sandbox.domain(size='64M') as dom:
        full, inc = first_chain(make_daemon, sandbox, b, dom, tmp_path)
        # The bitmaps go with the metadata: nothing in the images bears the chain out.
        rebirth(dom, tmp_path, drop_bitmaps=True)
        d2 = daemon(make_daemon, b)
        c2 = d2.client

        # Bad input names the field; nothing changes.
        problem(c2.post(f'/v1/domains/{dom}/checkpoints:adopt', json={}), 400)
        r = c2.post(f'/v1/domains/{dom}/checkpoints:adopt', json={'remote': 'nope'})
        assert problem(r, 404)['errors'][0]['pointer'] == '/remote', r.json
        problem(c2.post(f'/v1/domains/{dom}/checkpoints:adopt', json={'remote': 5}), 400)

        r = c2.post(f'/v1/domains/{dom}/checkpoints:adopt', json={'remote': 'off'})
        problem(r, 409)
        assert inc['checkpoint'] in r.json['detail'] or full['checkpoint'] in r.json['detail']
        assert 'bitmap' in r.json['detail'], r.json
        # Nothing is left of the attempt.
        assert checkpoints(dom) == []
        assert c2.get(f'/v1/domains/{dom}/checkpoints').json['items'] == []
        assert c2.get(f'/v1/domains/{dom}/backups').status in (200, 404)
        r = c2.get(f'/v1/domains/{dom}/backups')
        assert r.status == 404 or r.json['items'] == [], r

        # A resized disk does not match the chain either: an auto backup is a full, saying why.
        virsh('blockresize', dom, 'vda', '96M')
        r = c2.post(f'/v1/domains/{dom}/backups', json={'type': 'auto'})
        assert r.status == 202, r
        job = c2.wait_job(r.json['job_id'])
        assert job['state'] == 'succeeded', job
        assert job['result']['type'] == 'full', job
        note = job['result']['note']
        assert "remote 'off'" in note and 'resized' in note, note
        got = c2.get(f'/v1/domains/{dom}/backups/{r.json["id"]}').json
        assert got['type'] == 'full' and got['parent_id'] is None and got['location'] == 'local'
        assert [x['id'] for x in c2.get(f'/v1/domains/{dom}/backups').json['items']] == \
            [got['id']]


def test_shut_off_domain_adopts_from_its_images(make_daemon, sandbox, objstore_bucket,
                                                 tmp_path):
    b = objstore_bucket
    with sandbox.domain(size='64M') as dom:
        full, inc = first_chain(make_daemon, sandbox, b, dom, tmp_path)
        rebirth(dom, tmp_path)
        stop_domain(dom)
        d2 = daemon(make_daemon, b)
        c2 = d2.client
        r = c2.post(f'/v1/domains/{dom}/checkpoints:adopt', json={'remote': 'off'})
        assert r.status == 200, r
        assert r.json == {'remote': 'off', 'chain_id': full['chain_id'],
                          'backups': [full['id'], inc['id']],
                          'checkpoints': [full['checkpoint'], inc['checkpoint']]}, r.json
        assert sorted(checkpoints(dom)) == sorted([full['checkpoint'], inc['checkpoint']])
        items = c2.get(f'/v1/domains/{dom}/backups').json['items']
        assert {i['id']: i['location'] for i in items} == {full['id']: 'remote',
                                                            inc['id']: 'remote'}

        # Read through qemu-nbd, an incremental cannot stand on an image in a bucket.
        r = c2.post(f'/v1/domains/{dom}/backups', json={'type': 'incremental'})
        problem(r, 409)
        assert 'offsite only' in r.json['detail'] and "remote 'off'" in r.json['detail'], r.json
        keep(dom, SIZE, str(tmp_path / 'off.raw'))
        r = c2.post(f'/v1/domains/{dom}/backups', json={'type': 'auto'})
        assert r.status == 202, r
        job = c2.wait_job(r.json['job_id'])
        assert job['state'] == 'succeeded' and job['result']['type'] == 'full', job
        assert 'offsite only' in job['result']['note'], job
        root = os.path.join(d2.vault_dir, 'restore')
        r = c2.post(f'/v1/domains/{dom}/backups/{r.json["id"]}/restore',
                    json={'target_dir': os.path.join(root, 'f'), 'format': 'raw'})
        assert r.status == 202, r
        job = c2.wait_job(r.json['id'])
        assert job['state'] == 'succeeded', job
        same_disk(job['result']['disks'][0]['path'], str(tmp_path / 'off.raw'))


def test_database_lost_libvirt_kept(make_daemon, sandbox, objstore_bucket, tmp_path):
    """Only the database is new: libvirt still has the checkpoints, which the new database
    first records as not its own; the bucket's manifests show they are."""
    b = objstore_bucket
    with sandbox.domain(size='64M') as dom:
        full, inc = first_chain(make_daemon, sandbox, b, dom, tmp_path)
        d2 = daemon(make_daemon, b)
        c2 = d2.client
        r = c2.post(f'/v1/domains/{dom}/checkpoints:reconcile')
        assert r.status == 200, r
        states = {x['name']: x['state']
                  for x in c2.get(f'/v1/domains/{dom}/checkpoints').json['items']}
        assert states == {full['checkpoint']: 'orphaned', inc['checkpoint']: 'orphaned'}, states
        sandbox.write(dom, 40 * MiB, 2 * MiB, 0xd4)
        keep(dom, SIZE, str(tmp_path / 'd.raw'))
        nxt = backup(c2, dom, type='auto')
        assert nxt['type'] == 'incremental' and nxt['parent_id'] == inc['id'], nxt
        states = {x['name']: x['state']
                  for x in c2.get(f'/v1/domains/{dom}/checkpoints').json['items']}
        assert states == {full['checkpoint']: 'ok', inc['checkpoint']: 'ok',
                          nxt['checkpoint']: 'ok'}, states
        r = c2.post(f'/v1/domains/{dom}/backups/{nxt["id"]}/restore',
                    json={'target_dir': os.path.join(d2.vault_dir, 'restore', 'd'),
                          'format': 'qcow2'})
        assert r.status == 202, r
        job = c2.wait_job(r.json['id'])
        assert job['state'] == 'succeeded', job
        same_disk(job['result']['disks'][0]['path'], str(tmp_path / 'd.raw'))
