"""Snapshots: the whole of libvirt's snapshot model over HTTP, on real QEMU and on test:///default.

QEMU tests use a fresh sandbox domain (64 MiB, one qcow2 disk, no OS) and change its disk the
way a guest would (sandbox.write), then read it back through the guest's device (sandbox.read).
"""
import os
import subprocess
import urllib.parse

import pytest

from helpers import problem

A = 0xaa
B = 0xbb
MIB = 1024 * 1024


def take(c, dom, body, want=None):
    """Takes a snapshot; waits for its job when it answers 202. Returns the snapshot."""
    r = c.post(f'/v1/domains/{dom}/snapshots', json=body)
    assert r.status in (201, 202), r
    if want is not None:
        assert r.status == want, r
    if r.status == 202:
        job_id = r.json['id']
        assert r.headers['location'] == f'/v1/jobs/{job_id}'
        assert r.json['kind'] == 'snapshot_create'
        job = c.wait_job(job_id)
        assert job['state'] == 'succeeded', job
        name = job['result']['snapshot']
        if 'name' in body:
            assert name == body['name']
    else:
        name = r.json['name']
        assert r.headers['location'] == f'/v1/domains/{dom}/snapshots/{name}'
    s = c.get(f'/v1/domains/{dom}/snapshots/{name}')
    assert s.status == 200, s
    return s.json


def names(items):
    return sorted(s['name'] for s in items)


def shape(nodes):
    """The tree as nested tuples of names, children sorted, for comparison."""
    return sorted((n['name'], tuple(shape(n['children']))) for n in nodes)


def build_tree(c, dom):
    """s1 -> s2 -> s3, and s1 -> s4 -> s5: five snapshots, two branches."""
    for n in ('s1', 's2', 's3'):
        take(c, dom, {'name': n})
    r = c.post(f'/v1/domains/{dom}/snapshots/s1/revert', json={'start': 'running'})
    assert r.status == 200, r
    for n in ('s4', 's5'):
        take(c, dom, {'name': n})


TREE = [('s1', (('s2', (('s3', ()),)), ('s4', (('s5', ()),))))]


def check_tree(c, dom):
    r = c.get(f'/v1/domains/{dom}/snapshots?view=tree')
    assert r.status == 200, r
    assert shape(r.json['items']) == TREE, r.json
    s1 = r.json['items'][0]
    assert s1['parent'] is None and s1['children_count'] == 2
    flat = c.get(f'/v1/domains/{dom}/snapshots').json['items']
    assert names(flat) == ['s1', 's2', 's3', 's4', 's5']
    assert all('children' not in s for s in flat)
    by = {s['name']: s for s in flat}
    assert by['s3']['parent'] == 's2' and by['s5']['parent'] == 's4'
    assert [s['name'] for s in flat if s['is_current']] == ['s5']


# --- real QEMU -------------------------------------------------------------------------------

def test_revert_brings_pattern_a_back(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    sandbox.write(dom, 0, MIB, A)
    s1 = take(c, dom, {'name': 's1', 'description': 'pattern A'}, want=202)
    assert s1['kind'] == 'full' and s1['memory']['location'] == 'internal'
    assert s1['disks'] == [{'target': 'vda', 'location': 'internal', 'file': None}]
    assert s1['domain_state'] == 'running' and s1['description'] == 'pattern A'
    sandbox.write(dom, 0, MIB, B)
    take(c, dom, {'name': 's2'}, want=202)
    assert sandbox.read(dom, 0, 4096) == bytes([B]) * 4096

    r = c.post(f'/v1/domains/{dom}/snapshots/s1/revert', json={'start': 'running'})
    assert r.status == 200, r
    assert r.json['state'] == 'running'
    assert sandbox.read(dom, 0, MIB) == bytes([A]) * MIB
    assert c.get(f'/v1/domains/{dom}').json['state'] == 'running'
    cur = c.get(f'/v1/domains/{dom}/snapshots/current')
    assert cur.status == 200 and cur.json['name'] == 's1' and cur.json['is_current'], cur
    assert c.get(f'/v1/domains/{dom}/snapshots/s2').json['is_current'] is False

    # Back to s2, paused this time: pattern B, and the domain waits.
    r = c.post(f'/v1/domains/{dom}/snapshots/s2/revert', json={'start': 'paused'})
    assert r.status == 200 and r.json['state'] == 'paused', r
    r = c.post(f'/v1/domains/{dom}/snapshots/s1/revert', json={'start': 'as_taken', 'force': False})
    assert r.status == 200 and r.json['state'] == 'running', r
    assert sandbox.read(dom, 0, 4096) == bytes([A]) * 4096


def test_tree_and_subtree_delete_on_qemu(vv_qemu, qemu_domain):
    c, dom = vv_qemu.client, qemu_domain
    build_tree(c, dom)
    check_tree(c, dom)
    r = c.delete(f'/v1/domains/{dom}/snapshots/s2?children=true')
    assert r.status == 200, r
    assert sorted(r.json['deleted']) == ['s2', 's3'] and r.json['deleted'][0] == 's2'
    assert names(c.get(f'/v1/domains/{dom}/snapshots').json['items']) == ['s1', 's4', 's5']
    for gone in ('s2', 's3'):
        problem(c.get(f'/v1/domains/{dom}/snapshots/{gone}'), 404, 'not_found')
    # children_only keeps the snapshot itself.
    r = c.delete(f'/v1/domains/{dom}/snapshots/s1?children_only=true')
    assert r.status == 200 and sorted(r.json['deleted']) == ['s4', 's5'], r
    assert names(c.get(f'/v1/domains/{dom}/snapshots').json['items']) == ['s1']
    r = c.delete(f'/v1/domains/{dom}/snapshots/s1')
    assert r.status == 200 and r.json['deleted'] == ['s1'], r
    assert c.get(f'/v1/domains/{dom}/snapshots').json['items'] == []
    problem(c.get(f'/v1/domains/{dom}/snapshots/current'), 404, 'not_found')


def domain_uuid(c, dom):
    return c.get(f'/v1/domains/{dom}').json['uuid']


def test_external_disk_only_in_managed_folder(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    managed = os.path.join(os.path.realpath(vv_qemu.vault_dir), domain_uuid(c, dom), 'snapshots')
    take(c, dom, {'name': 'base'})
    sandbox.write(dom, 0, MIB, A)

    e1 = take(c, dom, {'name': 'e1', 'kind': 'disk_only'}, want=201)
    assert e1['kind'] == 'disk_only' and e1['memory'] == {'location': 'none', 'file': None}
    assert e1['domain_state'] == 'disk_snapshot'
    [disk] = e1['disks']
    assert disk['location'] == 'external'
    assert os.path.dirname(disk['file']) == managed, disk
    assert os.path.isfile(disk['file'])
    d = c.get(f'/v1/domains/{dom}').json
    assert d['disks'][0]['source'] == disk['file'], 'the domain now writes into the overlay'
    sandbox.write(dom, MIB, MIB, B)
    assert sandbox.read(dom, 0, 4096) == bytes([A]) * 4096

    # A file named relative to the managed folder, and one given as an absolute path inside it.
    e2 = take(c, dom, {'name': 'e2', 'kind': 'disk_only',
                       'disks': [{'target': 'vda', 'file': 'mine.qcow2'}]}, want=201)
    assert e2['disks'][0]['file'] == os.path.join(managed, 'mine.qcow2')
    e3 = take(c, dom, {'name': 'e3', 'kind': 'disk_only',
                       'disks': [{'target': 'vda', 'location': 'external',
                                  'file': os.path.join(managed, 'abs.qcow2')}]}, want=201)
    assert e3['disks'][0]['file'] == os.path.join(managed, 'abs.qcow2')
    r = c.get(f'/v1/domains/{dom}/snapshots?location=external')
    assert names(r.json['items']) == ['e1', 'e2', 'e3']
    r = c.get(f'/v1/domains/{dom}/snapshots?location=internal')
    assert names(r.json['items']) == ['base']

    # Escapes: refused with 400, and nothing is made.
    os.symlink('/tmp', os.path.join(managed, 'out'))
    other = os.path.join(os.path.realpath(vv_qemu.vault_dir), '0' * 8 + '-other', 'snapshots')
    os.makedirs(other)
    before = sorted(os.listdir(managed))
    listed = names(c.get(f'/v1/domains/{dom}/snapshots').json['items'])
    escapes = [
        {'disks': [{'target': 'vda', 'file': '../../etc/x.qcow2'}]},
        {'disks': [{'target': 'vda', 'file': '../../../../../../etc/x.qcow2'}]},
        {'disks': [{'target': 'vda', 'file': 'sub/../x.qcow2'}]},
        {'disks': [{'target': 'vda', 'file': '..'}]},
        {'disks': [{'target': 'vda', 'file': '/etc/x.qcow2'}]},
        {'disks': [{'target': 'vda', 'file': '/tmp/x.qcow2'}]},
        {'disks': [{'target': 'vda', 'file': 'out/x.qcow2'}]},
        {'disks': [{'target': 'vda', 'file': os.path.join(managed, 'out', 'x.qcow2')}]},
        {'disks': [{'target': 'vda', 'file': 'nofolder/x.qcow2'}]},
        {'disks': [{'target': 'vda', 'file': ''}]},
        # Inside the vault but not the domain's own folder: the vault's top, another domain's.
        {'disks': [{'target': 'vda', 'file': os.path.join(vv_qemu.vault_dir, 'x.qcow2')}]},
        {'disks': [{'target': 'vda', 'file': os.path.join(other, 'x.qcow2')}]},
    ]
    for extra in escapes:
        body = {'name': 'esc', 'kind': 'disk_only', 'location': 'external', **extra}
        p = problem(c.post(f'/v1/domains/{dom}/snapshots', json=body), 400, 'invalid_request')
        assert 'vda' in p['detail'], p
    p = problem(c.post(f'/v1/domains/{dom}/snapshots',
                       json={'name': 'esc', 'location': 'external', 'memory_file': '/etc/mem'}),
                400, 'invalid_request')
    assert 'memory_file' in p['detail']
    p = problem(c.post(f'/v1/domains/{dom}/snapshots',
                       json={'name': 'esc', 'location': 'external',
                             'memory_file': os.path.join(other, 'esc.mem')}),
                400, 'invalid_request')
    assert 'memory_file' in p['detail'] and 'own snapshot folder' in p['detail'], p
    assert os.listdir(other) == []
    p = problem(c.post(f'/v1/domains/{dom}/snapshots',
                       json={'name': 'esc', 'location': 'external',
                             'memory_file': 'esc.vda.qcow2'}), 400, 'invalid_request')
    assert 'share' in p['detail']
    # An existing file is not overwritten.
    problem(c.post(f'/v1/domains/{dom}/snapshots',
                   json={'name': 'esc', 'kind': 'disk_only',
                         'disks': [{'target': 'vda', 'file': 'mine.qcow2'}]}), 409, 'conflict')
    assert sorted(os.listdir(managed)) == before
    assert not os.path.exists('/tmp/x.qcow2')
    assert names(c.get(f'/v1/domains/{dom}/snapshots').json['items']) == listed


def test_external_full_snapshot_files(vv_qemu, qemu_domain):
    c, dom = vv_qemu.client, qemu_domain
    managed = os.path.join(os.path.realpath(vv_qemu.vault_dir), domain_uuid(c, dom), 'snapshots')
    r = c.post(f'/v1/domains/{dom}/snapshots',
               json={'name': 'x1', 'location': 'external', 'memory_file': 'x1.mem'})
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    # libvirt counts the memory it wrote: the job reports it.
    total = job['progress']['bytes_total']
    assert total >= 64 * MIB and 0 < job['progress']['bytes_done'] <= total, job
    x = c.get(f'/v1/domains/{dom}/snapshots/x1').json
    assert x['kind'] == 'full'
    assert x['memory'] == {'location': 'external', 'file': os.path.join(managed, 'x1.mem')}
    assert x['disks'][0]['file'] == os.path.join(managed, 'x1.vda.qcow2')
    assert os.path.getsize(x['memory']['file']) > 0


def test_external_snapshot_delete(vv_qemu, qemu_domain, sandbox):
    """libvirt 9.0 deletes an external snapshot that has no internal parent: its overlay is
    merged back (200); the data written since stays, the domain writes into its image again."""
    c, dom = vv_qemu.client, qemu_domain
    base = c.get(f'/v1/domains/{dom}').json['disks'][0]['source']
    sandbox.write(dom, 0, MIB, A)
    e1 = take(c, dom, {'name': 'e1', 'kind': 'disk_only'}, want=201)
    assert e1['disks'][0]['location'] == 'external' and e1['parent'] is None, e1
    sandbox.write(dom, MIB, MIB, B)
    r = c.delete(f'/v1/domains/{dom}/snapshots/e1')
    assert r.status == 200 and r.json == {'deleted': ['e1']}, r
    assert c.get(f'/v1/domains/{dom}/snapshots').json['items'] == []
    assert c.get(f'/v1/domains/{dom}').json['disks'][0]['source'] == base
    assert sandbox.read(dom, 0, 4096) == bytes([A]) * 4096
    assert sandbox.read(dom, MIB, 4096) == bytes([B]) * 4096


def test_libvirt_refusals_change_nothing(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    take(c, dom, {'name': 'i1'})
    sandbox.write(dom, 0, MIB, A)
    take(c, dom, {'name': 'e1', 'kind': 'disk_only'})
    sandbox.write(dom, 0, MIB, B)
    before = c.get(f'/v1/domains/{dom}/snapshots').json

    # Revert to an external snapshot, and deleting one whose parent is internal: libvirt 9.0
    # cannot; its reason is passed on.
    p = problem(c.post(f'/v1/domains/{dom}/snapshots/e1/revert', json={}), 501, 'unsupported')
    assert 'external' in p['detail'], p
    p = problem(c.delete(f'/v1/domains/{dom}/snapshots/e1'), 501, 'unsupported')
    assert 'external' in p['detail'], p
    assert c.get(f'/v1/domains/{dom}/snapshots').json == before
    assert c.get(f'/v1/domains/{dom}').json['state'] == 'running'
    assert sandbox.read(dom, 0, 4096) == bytes([B]) * 4096

    # Quiesce needs the guest agent, which these domains lack.
    p = problem(c.post(f'/v1/domains/{dom}/snapshots',
                       json={'name': 'q1', 'kind': 'disk_only', 'quiesce': True}), 501)
    assert 'agent' in p['detail'], p
    problem(c.post(f'/v1/domains/{dom}/snapshots', json={'name': 'q2', 'quiesce': True}),
            400, 'invalid_request')
    assert c.get(f'/v1/domains/{dom}/snapshots').json == before

    # metadata_only: libvirt forgets it, the overlay stays in use.
    overlay = [s for s in before['items'] if s['name'] == 'e1'][0]['disks'][0]['file']
    r = c.delete(f'/v1/domains/{dom}/snapshots/e1?metadata_only=true')
    assert r.status == 200 and r.json['deleted'] == ['e1'], r
    assert os.path.isfile(overlay)
    assert names(c.get(f'/v1/domains/{dom}/snapshots').json['items']) == ['i1']


def test_checkpoints_do_not_stop_snapshots(vv_qemu, qemu_domain):
    c, dom = vv_qemu.client, qemu_domain
    subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'checkpoint-create-as', dom, 'cp1'],
                   check=True, stdout=subprocess.DEVNULL)
    take(c, dom, {'name': 'with-cp'}, want=202)
    take(c, dom, {'name': 'with-cp-ext', 'kind': 'disk_only'}, want=201)
    assert names(c.get(f'/v1/domains/{dom}/snapshots').json['items']) == ['with-cp', 'with-cp-ext']


def test_internal_revert_with_bitmaps_is_refused_unharmed(vv_qemu, qemu_domain):
    """QEMU would fail to load it and libvirt would leave the domain shut off: refuse first."""
    c, dom = vv_qemu.client, qemu_domain
    take(c, dom, {'name': 'before-cp'}, want=202)
    r = c.post(f'/v1/domains/{dom}/checkpoints', json={'name': 'cp1'})
    assert r.status == 201, r
    r = c.post(f'/v1/domains/{dom}/snapshots/before-cp/revert', json={})
    assert 'dirty bitmaps' in problem(r, 409, 'conflict')['detail']
    assert c.get(f'/v1/domains/{dom}').json['state'] == 'running'
    assert c.get(f'/v1/domains/{dom}/checkpoints/cp1').json['state'] == 'ok'
    # Without the checkpoint the same revert goes through.
    assert c.delete(f'/v1/domains/{dom}/checkpoints/cp1').status in (200, 204)
    r = c.post(f'/v1/domains/{dom}/snapshots/before-cp/revert', json={})
    assert r.status == 200, r
    assert c.get(f'/v1/domains/{dom}').json['state'] == 'running'


def test_stopped_domain(vv_qemu, sandbox):
    c = vv_qemu.client
    with sandbox.domain(size='16M', start=False) as dom:
        p = problem(c.post(f'/v1/domains/{dom}/snapshots', json={'kind': 'full'}), 409,
                    'conflict')
        assert 'shutoff' in p['detail'], p
        s = take(c, dom, {'description': 'offline'}, want=201)
        assert s['name'].startswith('snap-') and s['kind'] == 'disk_only'
        assert s['domain_state'] == 'shutoff'
        assert s['disks'][0]['location'] == 'internal'


# --- test:///default -------------------------------------------------------------------------

def test_tree_on_test_driver(vv_test):
    c = vv_test.client
    build_tree(c, 'test')
    check_tree(c, 'test')
    r = c.delete('/v1/domains/test/snapshots/s1?children=true')
    assert r.status == 200 and sorted(r.json['deleted']) == ['s1', 's2', 's3', 's4', 's5'], r
    assert c.get('/v1/domains/test/snapshots').json['items'] == []
    assert c.get('/v1/domains/test/snapshots?view=tree').json['items'] == []


def test_filters_and_formats(vv_test):
    c = vv_test.client
    build_tree(c, 'test')
    base = '/v1/domains/test/snapshots'

    def listed(q):
        r = c.get(f'{base}?{q}')
        assert r.status == 200, r
        return names(r.json['items'])

    assert listed('roots=true') == ['s1']
    assert listed('roots=false') == ['s2', 's3', 's4', 's5']
    assert listed('leaves=true') == ['s3', 's5']
    assert listed('leaves=false') == ['s1', 's2', 's4']
    assert listed('current=true') == ['s5']
    assert listed('memory=true') == ['s1', 's2', 's3', 's4', 's5']
    assert listed('memory=false') == []
    assert listed('location=internal') == ['s1', 's2', 's3', 's4', 's5']
    assert listed('location=external') == []
    assert listed('roots=false&leaves=true') == ['s3', 's5']
    assert listed('view=flat') == ['s1', 's2', 's3', 's4', 's5']

    r = c.get(f'{base}/s2?format=xml')
    assert r.status == 200 and r.content_type.startswith('application/xml'), r
    assert '<name>s2</name>' in r.text and '<parent>' in r.text
    r = c.get(f'{base}/s2?format=json')
    assert r.status == 200 and r.json['name'] == 's2' and r.json['children_count'] == 1

    # By UUID as well as by name.
    uuid = c.get('/v1/domains/test').json['uuid']
    assert c.get(f'/v1/domains/{uuid}/snapshots/current').json['name'] == 's5'

    # A description with XML's special characters survives the round trip.
    text = 'a <b> & "c" \'d\'\nline two'
    s = take(c, 'test', {'name': 'desc', 'description': text})
    assert s['description'] == text


BAD_NAMES = ['a<b', 'a>b', 'a&b', "a'b", 'a"b', 'a/b', '..', '.hidden', '', 'a b', 'x' * 65,
             'current', 'é']


@pytest.mark.parametrize('name', BAD_NAMES)
def test_bad_names_are_refused(vv_test, name):
    c = vv_test.client
    p = problem(c.post('/v1/domains/test/snapshots', json={'name': name}), 400, 'invalid_request')
    assert 'name' in p['detail']
    assert c.get('/v1/domains/test/snapshots').json['items'] == []
    assert c.get('/v1/jobs').json['items'] == []


@pytest.mark.parametrize('body', [
    {'bogus': 1},
    {'name': 5},
    {'name': 's', 'quiesce': 'yes'},
    {'name': 's', 'kind': 'everything'},
    {'name': 's', 'kind': 1},
    {'name': 's', 'location': 'elsewhere'},
    {'name': 's', 'disks': 'vda'},
    {'name': 's', 'disks': [{'target': 1}]},
    {'name': 's', 'disks': [{'location': 'external'}]},
    {'name': 's', 'disks': [{'target': 'vda', 'extra': True}]},
    {'name': 's', 'disks': [{'target': 'vdz'}]},
    {'name': 's', 'disks': [{'target': 'vda'}, {'target': 'vda'}]},
    {'name': 's', 'disks': [{'target': 'vda', 'location': 'sideways'}]},
    {'name': 's', 'disks': [{'target': 'vda', 'location': 'internal', 'file': 'x.qcow2'}]},
    {'name': 's', 'memory_file': 'm'},
    {'name': 's', 'description': 'bell \u0007'},
    {'name': 's', 'description': 'x' * 5000},
    {'name': 's', 'disks': [{'target': 'vda'}] * 65},
    [],
    'text',
])
def test_bad_bodies_are_refused(vv_test, body):
    c = vv_test.client
    problem(c.post('/v1/domains/test/snapshots', json=body), 400, 'invalid_request')
    assert c.get('/v1/domains/test/snapshots').json['items'] == []


def test_bad_requests_and_missing_things(vv_test):
    c = vv_test.client
    base = '/v1/domains/test/snapshots'
    take(c, 'test', {'name': 's1'})
    problem(c.post(base, json={'name': 's1'}), 409, 'conflict')
    for q in ('view=bushes', 'view=tree&roots=true', 'roots=maybe', 'location=moon',
              'memory=2'):
        problem(c.get(f'{base}?{q}'), 400, 'invalid_request')
    problem(c.get(f'{base}/s1?format=yaml'), 400, 'invalid_request')
    problem(c.delete(f'{base}/s1?children=true&children_only=true'), 400, 'invalid_request')
    problem(c.delete(f'{base}/s1?metadata_only=perhaps'), 400, 'invalid_request')
    for body in ({'start': 'sideways'}, {'start': 1}, {'force': 'yes'}, {'extra': 1}):
        problem(c.post(f'{base}/s1/revert', json=body), 400, 'invalid_request')
    for seg in ('%2E%2E', '.'):
        problem(c.get(f'{base}/{seg}'), 400, 'invalid_request')
        problem(c.delete(f'{base}/{seg}'), 400, 'invalid_request')
    problem(c.get(f'{base}/{urllib.parse.quote("a/b", safe="")}'), 400, 'invalid_request')

    problem(c.get('/v1/domains/nosuch/snapshots'), 404, 'not_found')
    problem(c.post('/v1/domains/nosuch/snapshots', json={'name': 'x'}), 404, 'not_found')
    problem(c.get('/v1/domains/nosuch/snapshots/current'), 404, 'not_found')
    problem(c.get('/v1/domains/nosuch/snapshots/s1'), 404, 'not_found')
    problem(c.get(f'{base}/nosuch'), 404, 'not_found')
    problem(c.get(f'{base}/nosuch?format=xml'), 404, 'not_found')
    problem(c.delete(f'{base}/nosuch'), 404, 'not_found')
    problem(c.post(f'{base}/nosuch/revert', json={}), 404, 'not_found')
    problem(c.post('/v1/domains/nosuch/snapshots/s1/revert', json={}), 404, 'not_found')
    problem(c.delete('/v1/domains/nosuch/snapshots/s1'), 404, 'not_found')
    # Nothing of it changed what there is.
    assert names(c.get(base).json['items']) == ['s1']
