"""Checkpoints: the API, the SQLite copy of libvirt's metadata and the reconciler.

Against libvirt's test driver (vv_test, or a daemon on a custom test:/// node) and against
real QEMU domains of the sandbox (vv_qemu + qemu_domain). Changes "behind the service's
back" are made with virsh and qemu-img, as an administrator would make them.
"""
import concurrent.futures
import json
import os
import re
import subprocess
import time
import urllib.parse

import libvirt
import pytest

from helpers import QEMU_URI, disk_path, domain_state, problem, virsh, wait_for

MiB = 1024 * 1024
NAME_RE = re.compile(r'^cp-\d{8}-\d{6}-[0-9a-f]{4}$')

NODE_XML = """<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>run1</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><source file='/guest/run1-a.img'/><target dev='vda' bus='virtio'/></disk>
      <disk type='file' device='disk'><source file='/guest/run1-b.img'/><target dev='vdb' bus='virtio'/></disk>
      <disk type='file' device='cdrom'><source file='/guest/cd.iso'/><target dev='hdc' bus='ide'/></disk>
    </devices>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>off1</name>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><source file='/guest/off1.img'/><target dev='vda' bus='virtio'/></disk>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>
</node>
"""


# ---------------------------------------------------------------- helpers

def virsh_checkpoints(dom):
    """{name: parent or None} as libvirt sees them now."""
    names = virsh('checkpoint-list', dom, '--name').stdout.split()
    out = {}
    for n in names:
        p = virsh('checkpoint-parent', dom, n, check=False)
        out[n] = p.stdout.strip() or None if p.returncode == 0 else None
    return out


def create(client, dom, name=None, **extra):
    body = dict(extra)
    if name is not None:
        body['name'] = name
    r = client.post(f'/v1/domains/{dom}/checkpoints', json=body)
    assert r.status == 201, r
    return r.json


def listing(client, dom, query=''):
    r = client.get(f'/v1/domains/{dom}/checkpoints{query}')
    assert r.status == 200, r
    return r.json['items']


def by_name(items):
    return {c['name']: c for c in items}


def image_bitmaps(path):
    out = subprocess.run(['qemu-img', 'info', '-U', '--output=json', path], check=True,
                         capture_output=True, text=True).stdout
    data = json.loads(out)['format-specific']['data']
    return {b['name']: b['flags'] for b in data.get('bitmaps', [])}


def start_domain(dom):
    """Starts dom and checks that QEMU itself says the guest runs. `virsh start` returns only
    once libvirt has resumed the CPUs (the domain is active and running by then), so this is a
    check, not a wait for a race: a QEMU that died after the start is named with its log."""
    virsh('start', dom)

    def qemu_running():
        if domain_state(dom) != 'running':
            log = f'/var/log/libvirt/qemu/{dom}.log'
            tail = open(log).read()[-2000:] if os.path.exists(log) else '(no log)'
            raise AssertionError(f'{dom} is {domain_state(dom)} after start; QEMU log: {tail}')
        p = virsh('qemu-monitor-command', dom, '--hmp', 'info status', check=False)
        return p.returncode == 0 and 'running' in p.stdout

    wait_for(f'QEMU of {dom} to run', qemu_running)


def stop_domain(dom):
    """Stops dom with SIGTERM only. QEMU writes persistent bitmaps into the image only as it
    closes it; a plain destroy sends SIGKILL when QEMU is slow to exit (a loaded machine), and
    then the bitmaps made in this run never reach the image. destroy --graceful gives up
    instead of killing, so it is asked again until QEMU has closed the image."""
    def stopped():
        if domain_state(dom) == 'shut off':
            return True
        virsh('destroy', '--graceful', dom, check=False)
        return domain_state(dom) == 'shut off'

    wait_for(f'{dom} to stop', stopped, timeout=180)


def push_incremental(dom, since, tmp_path):
    """Runs a push backup of vda with <incremental>since</incremental>; returns the bytes
    the target image holds as data (only what the backup copied)."""
    target = tmp_path / f'inc-{since}-{time.monotonic_ns()}.qcow2'
    xml = tmp_path / 'backup.xml'
    xml.write_text(f"<domainbackup mode='push'><incremental>{since}</incremental><disks>"
                   f"<disk name='vda' type='file'><target file='{target}'/>"
                   f"<driver type='qcow2'/></disk></disks></domainbackup>")
    virsh('backup-begin', dom, str(xml))
    conn = libvirt.open(QEMU_URI)
    try:
        d = conn.lookupByName(dom)

        def job_over():
            # libvirt 9.0 says "domain is not running" here (and "cannot perform disk backup
            # for inactive domain" from backup-begin): the domain ended during the backup.
            try:
                return d.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE
            except libvirt.libvirtError as e:
                log = f'/var/log/libvirt/qemu/{dom}.log'
                tail = open(log).read()[-2000:] if os.path.exists(log) else '(no log)'
                raise AssertionError(f'{dom} ended during the backup ({e}); it is '
                                     f'{domain_state(dom)}; QEMU log: {tail}') from e
        wait_for('the backup job to end', job_over, timeout=120)
        stats = d.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        assert stats.get('type') == libvirt.VIR_DOMAIN_JOB_COMPLETED, stats
    finally:
        conn.close()
    # The target's backing file is the domain's disk: count what the target itself holds.
    out = subprocess.run(['qemu-img', 'map', '-U', '--output=json', '-f', 'qcow2', str(target)],
                         check=True, capture_output=True, text=True).stdout
    return sum(e['length'] for e in json.loads(out) if e.get('data') and e.get('depth') == 0)


def assert_copied(copied, expected):
    # Bitmaps count 64 KiB clusters; the writes below are cluster-aligned.
    assert expected <= copied <= expected + 128 * 1024, f'copied {copied}, expected {expected}'


def make_chain_with_writes(client, sandbox, dom):
    """c1, 2 MiB, c2, c3, 2 MiB: 4 MiB written since c1."""
    create(client, dom, 'c1', description='first')
    sandbox.write(dom, 8 * MiB, 2 * MiB, 0xc1)
    create(client, dom, 'c2')
    create(client, dom, 'c3', description='third <&>')
    sandbox.write(dom, 32 * MiB, 2 * MiB, 0xc3)


def chain_view(items):
    return [(c['name'], c['parent'], c['created_at'], c['description'],
             [(d['target'], d['checkpoint'], d['bitmap']) for d in c['disks']]) for c in items]


# ---------------------------------------------------------------- test driver

@pytest.fixture
def vv_node(make_daemon, tmp_path):
    """A daemon on a custom test driver node: run1 (running, vda+vdb+cdrom), off1 (shut off)."""
    node = tmp_path / 'node.xml'
    node.write_text(NODE_XML)
    return make_daemon(f'test://{node}').start()


def test_create_list_get_delete_on_the_test_driver(vv_test):
    c = vv_test.client
    cp1 = create(c, 'test', 'cp1', description='a <first> & "quoted" \'one\'')
    assert cp1['state'] == 'ok' and cp1['parent'] is None and cp1['in_libvirt'] is True
    assert cp1['description'] == 'a <first> & "quoted" \'one\''
    assert cp1['disks'] == [{'target': 'vda', 'checkpoint': 'bitmap', 'bitmap': 'cp1',
                             'size_bytes': None}]
    gen = create(c, 'test')
    assert NAME_RE.match(gen['name']), gen['name']
    assert gen['parent'] == 'cp1'
    cp3 = create(c, 'test', 'cp3')
    assert cp3['parent'] == gen['name']

    items = listing(c, 'test')
    assert [i['name'] for i in items] == ['cp1', gen['name'], 'cp3']
    assert [i['name'] for i in listing(c, 'test', '?roots=true')] == ['cp1']
    assert [i['name'] for i in listing(c, 'test', '?leaves=true')] == ['cp3']
    assert listing(c, 'test', '?roots=true&leaves=true') == []
    assert [i['name'] for i in listing(c, 'test', '?roots=false')] == [gen['name'], 'cp3']
    assert [i['name'] for i in listing(c, 'test', '?roots=false&leaves=false')] == [gen['name']]

    r = c.get('/v1/domains/test/checkpoints/cp1')
    assert r.status == 200 and r.json == items[0]
    # The same checkpoint by the domain's UUID.
    r = c.get(f'/v1/domains/{cp1["domain_uuid"]}/checkpoints/cp1')
    assert r.status == 200 and r.json['name'] == 'cp1'

    # The XML libvirt holds, escaped by the service, full (with <domain>) as redefine needs.
    r = c.get('/v1/domains/test/checkpoints/cp1?format=xml')
    assert r.status == 200 and r.content_type.startswith('application/xml')
    assert '<description>a &lt;first&gt; &amp; &quot;quoted&quot; &apos;one&apos;</description>' in r.text
    assert '<domain type' in r.text and '<name>cp1</name>' in r.text

    # Deleting a middle checkpoint: libvirt merges, its child gets its parent.
    r = c.delete(f'/v1/domains/test/checkpoints/{gen["name"]}')
    assert r.status == 204, r
    items = by_name(listing(c, 'test'))
    assert set(items) == {'cp1', 'cp3'} and items['cp3']['parent'] == 'cp1'
    problem(c.get(f'/v1/domains/test/checkpoints/{gen["name"]}'), 404, 'not_found')

    # children=true takes the descendants along.
    assert c.delete('/v1/domains/test/checkpoints/cp1?children=true').status == 204
    assert listing(c, 'test') == []


def test_location_header_and_metadata_only_delete(vv_test):
    c = vv_test.client
    r = c.post('/v1/domains/test/checkpoints', json={'name': 'loc'})
    assert r.status == 201
    assert r.headers['location'] == f'/v1/domains/{r.json["domain_uuid"]}/checkpoints/loc'
    assert c.get(r.headers['location']).status == 200
    assert c.delete('/v1/domains/test/checkpoints/loc?metadata_only=true').status == 204
    problem(c.get('/v1/domains/test/checkpoints/loc'), 404, 'not_found')


def test_restart_keeps_the_chain_on_the_test_driver(vv_test):
    c = vv_test.client
    for n in ('a1', 'a2', 'a3'):
        create(c, 'test', n, description=f'desc {n}')
    before = listing(c, 'test')
    vv_test.restart()
    after = listing(vv_test.client, 'test')
    assert chain_view(after) == chain_view(before)
    assert [i['parent'] for i in after] == [None, 'a1', 'a2']
    # The test driver forgets everything when the process ends: they came back from SQLite.
    assert all(i['state'] == 'redefined' and i['in_libvirt'] for i in after), after
    assert all('redefined from the stored XML' in i['reason'] for i in after)
    # Creating goes on from the restored chain.
    assert create(vv_test.client, 'test', 'a4')['parent'] == 'a3'


def test_chosen_disks_and_bad_disks(vv_node):
    c = vv_node.client
    cp = create(c, 'run1', 'only-b', disks=['vdb'])
    assert {d['target']: d['checkpoint'] for d in cp['disks']} == {'vda': 'no', 'vdb': 'bitmap',
                                                                    'hdc': 'no'}
    cp = create(c, 'run1', 'all')
    assert {d['target']: d['checkpoint'] for d in cp['disks']}['vda'] == 'bitmap'
    for disks, word in ((['vdz'], 'no disk'), (['vda', 'vda'], 'twice'), (['hdc'], 'not a disk')):
        p = problem(c.post('/v1/domains/run1/checkpoints', json={'disks': disks}), 400,
                    'invalid_request')
        assert word in p['detail'], p


def test_stopped_domain_is_a_conflict(vv_node):
    c = vv_node.client
    p = problem(c.post('/v1/domains/off1/checkpoints', json={'name': 'x'}), 409, 'conflict')
    assert 'not running' in p['detail'], p
    assert listing(c, 'off1') == []
    r = c.post('/v1/domains/off1/checkpoints:reconcile')
    assert r.status == 200 and r.json['actions'] == [] and r.json['domain'] == 'off1'


BAD_NAMES = ['a<b', 'a>b', 'a&b', "a'b", 'a"b', 'a/b', '..', '.hidden', '', 'x' * 65, 'a b',
             'caf\u00e9', 'a\u0000b', 'semi;colon', '../../etc']


@pytest.mark.parametrize('name', BAD_NAMES)
def test_bad_names_are_refused(vv_test, name):
    c = vv_test.client
    p = problem(c.post('/v1/domains/test/checkpoints', json={'name': name}), 400,
                'invalid_request')
    assert 'name' in p['detail']
    assert listing(c, 'test') == []


@pytest.mark.parametrize('body, word', [
    ({'nam': 'x'}, 'nam'),
    ({'name': 'x', 'extra': 1}, 'extra'),
    ({'name': 5}, ''),
    ({'name': None}, ''),
    ({'name': ['x']}, ''),
    ({'description': 3}, ''),
    ({'description': 'x' * 1025}, 'description'),
    ({'description': 'bell\u0007'}, 'control'),
    ({'description': 'nul\u0000'}, 'NUL'),
    ({'disks': 'vda'}, 'disks'),
    ({'disks': []}, 'disks'),
    ({'disks': [1]}, 'disks'),
    ({'disks': ['<vda>']}, 'disks'),
    ({'disks': ['vda'] * 65}, 'disks'),
])
def test_bad_bodies_are_refused(vv_test, body, word):
    c = vv_test.client
    p = problem(c.post('/v1/domains/test/checkpoints', json=body), 400, 'invalid_request')
    assert word in p['detail'], p
    assert listing(c, 'test') == []


def test_bodies_that_are_not_objects(vv_test):
    c = vv_test.client
    problem(c.post('/v1/domains/test/checkpoints', json=['cp1']), 400, 'invalid_request')
    problem(c.request('POST', '/v1/domains/test/checkpoints', body='{"name": ',
                      headers={'Content-Type': 'application/json'}), 400, 'invalid_request')
    problem(c.request('POST', '/v1/domains/test/checkpoints', body='{"name": "a", "name": "b"}',
                      headers={'Content-Type': 'application/json'}), 400, 'invalid_request')
    problem(c.post('/v1/domains/test/checkpoints:reconcile', json={'adopt': 'yes'}), 400,
            'invalid_request')
    problem(c.post('/v1/domains/test/checkpoints:reconcile', json={'other': True}), 400,
            'invalid_request')
    assert listing(c, 'test') == []


def test_bad_query_parameters(vv_test):
    c = vv_test.client
    create(c, 'test', 'q1')
    problem(c.get('/v1/domains/test/checkpoints?roots=maybe'), 400, 'invalid_request')
    problem(c.get('/v1/domains/test/checkpoints/q1?format=yaml'), 400, 'invalid_request')
    problem(c.delete('/v1/domains/test/checkpoints/q1?children=perhaps'), 400, 'invalid_request')
    problem(c.delete('/v1/domains/test/checkpoints/q1?metadata_only=2'), 400, 'invalid_request')
    # Booleans are true or false only; the problem names the parameter.
    for query, name in [('?roots=1', 'roots'), ('?leaves=0', 'leaves'), ('?refresh=', 'refresh'),
                        ('/q1?refresh=1', 'refresh')]:
        p = problem(c.get(f'/v1/domains/test/checkpoints{query}'), 400, 'invalid_request')
        assert p['errors'] == [{'parameter': name, 'detail': 'must be true or false'}], p
    for query, name in [('?children=1', 'children'), ('?metadata_only=0', 'metadata_only')]:
        p = problem(c.delete(f'/v1/domains/test/checkpoints/q1{query}'), 400, 'invalid_request')
        assert p['errors'][0]['parameter'] == name, p
    assert [i['name'] for i in listing(c, 'test')] == ['q1']


def test_unknown_domain_and_checkpoint(vv_test):
    c = vv_test.client
    for r in (c.get('/v1/domains/nope/checkpoints'),
              c.post('/v1/domains/nope/checkpoints', json={'name': 'x'}),
              c.post('/v1/domains/nope/checkpoints:reconcile'),
              c.get('/v1/domains/nope/checkpoints/x'),
              c.delete('/v1/domains/nope/checkpoints/x'),
              c.get('/v1/domains/00000000-0000-0000-0000-000000000000/checkpoints')):
        problem(r, 404, 'not_found')
    # Names libvirt may hold are addressable percent-encoded: unknown ones are 404, not 400.
    for raw in ('nope', '<x>', 'a/b', "it's", 'caf\u00e9', '..'):
        path = '/v1/domains/test/checkpoints/' + urllib.parse.quote(raw, safe='')
        problem(c.get(path), 404, 'not_found')
        problem(c.delete(path), 404, 'not_found')
    problem(c.get('/v1/domains/test/checkpoints/' + 'x' * 1100), 400, 'invalid_request')


def test_duplicate_name_is_a_conflict(vv_test):
    c = vv_test.client
    create(c, 'test', 'dup')
    p = problem(c.post('/v1/domains/test/checkpoints', json={'name': 'dup'}), 409, 'conflict')
    assert 'dup' in p['detail']
    assert len(listing(c, 'test')) == 1


def test_concurrent_creates_are_created_or_busy(vv_test):
    c = vv_test.client

    def one(i):
        return c.post('/v1/domains/test/checkpoints', json={'name': f'par{i}'})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(16)))
    made = sorted(r.json['name'] for r in answers if r.status == 201)
    for r in answers:
        if r.status != 201:
            problem(r, 409, 'domain_busy')
    items = listing(c, 'test')
    assert sorted(i['name'] for i in items) == made and made
    # Still one chain: every checkpoint's parent is the one before it.
    assert [i['parent'] for i in items] == [None] + [i['name'] for i in items[:-1]]


# ---------------------------------------------------------------- QEMU

def test_qemu_restart_keeps_three_checkpoints(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    make_chain_with_writes(c, sandbox, dom)
    before = listing(c, dom)
    assert [(i['name'], i['parent']) for i in before] == [('c1', None), ('c2', 'c1'), ('c3', 'c2')]
    vv_qemu.restart()
    vv_qemu.wait_ready()
    after = listing(vv_qemu.client, dom)
    assert chain_view(after) == chain_view(before)
    assert all(i['state'] == 'ok' and i['reason'] is None and i['in_libvirt'] for i in after)
    assert virsh_checkpoints(dom) == {'c1': None, 'c2': 'c1', 'c3': 'c2'}

    # Lost while the service was down: the start-up reconcile alone puts them back.
    vv_qemu.stop()
    for n in ('c3', 'c2', 'c1'):
        virsh('checkpoint-delete', dom, n, '--metadata')
    vv_qemu.start()
    wait_for('the start-up reconcile', lambda: len(virsh_checkpoints(dom)) == 3, timeout=90)
    assert virsh_checkpoints(dom) == {'c1': None, 'c2': 'c1', 'c3': 'c2'}
    vv_qemu.wait_ready()
    assert [i['state'] for i in listing(vv_qemu.client, dom)] == ['redefined'] * 3


def test_qemu_lost_metadata_is_redefined_and_incremental_works(vv_qemu, qemu_domain, sandbox,
                                                               tmp_path):
    c, dom = vv_qemu.client, qemu_domain
    make_chain_with_writes(c, sandbox, dom)
    before = listing(c, dom)

    # A parent lost alone: libvirt gives its child another parent; both are put right.
    virsh('checkpoint-delete', dom, 'c2', '--metadata')
    assert virsh_checkpoints(dom) == {'c1': None, 'c3': 'c1'}
    r = c.post(f'/v1/domains/{dom}/checkpoints:reconcile')
    assert r.status == 200
    assert [(a['checkpoint'], a['action']) for a in r.json['actions']] == [
        ('c2', 'redefined'), ('c3', 'updated')], r.json
    assert virsh_checkpoints(dom) == {'c1': None, 'c2': 'c1', 'c3': 'c2'}
    assert chain_view(listing(c, dom)) == chain_view(before)

    # All of them lost, roots first (each loss re-parents the rest in libvirt).
    for n in ('c1', 'c2', 'c3'):
        virsh('checkpoint-delete', dom, n, '--metadata')
    assert virsh_checkpoints(dom) == {}

    after = listing(c, dom, '?refresh=true')  # reconcile now, not within the max age
    assert chain_view(after) == chain_view(before)
    for i in after:
        assert i['state'] == 'redefined' and i['in_libvirt'], i
        assert 'validated against the disks' in i['reason'], i
    assert virsh_checkpoints(dom) == {'c1': None, 'c2': 'c1', 'c3': 'c2'}
    # The bitmaps were never lost: an incremental from the oldest copies only what was written.
    assert_copied(push_incremental(dom, 'c1', tmp_path), 4 * MiB)


def test_qemu_undefine_and_define_brings_the_chain_back(vv_qemu, qemu_domain, sandbox,
                                                        tmp_path):
    c, dom = vv_qemu.client, qemu_domain
    make_chain_with_writes(c, sandbox, dom)
    before = listing(c, dom)
    xml = tmp_path / 'domain.xml'
    xml.write_text(virsh('dumpxml', '--inactive', '--security-info', dom).stdout)
    # libvirt keeps a running domain's checkpoints through an undefine: stop it first.
    stop_domain(dom)
    virsh('undefine', dom, '--checkpoints-metadata')
    assert virsh('dominfo', dom, check=False).returncode != 0
    virsh('define', str(xml))
    # The define event alone brings them back (no request to the service in between).
    wait_for('the reconciler to redefine the chain', lambda: len(virsh_checkpoints(dom)) == 3)
    assert virsh_checkpoints(dom) == {'c1': None, 'c2': 'c1', 'c3': 'c2'}
    assert 'checkpoint reconcile of' in vv_qemu.log()
    after = listing(c, dom)
    assert chain_view(after) == chain_view(before)
    for i in after:
        assert i['state'] == 'redefined', i
        assert 'not validated: the domain is not running' in i['reason'], i
    start_domain(dom)
    items = listing(c, dom)
    assert [(i['name'], i['state']) for i in items] == [('c1', 'redefined'), ('c2', 'redefined'),
                                                        ('c3', 'redefined')], items
    assert_copied(push_incremental(dom, 'c1', tmp_path), 4 * MiB)


def test_qemu_removed_bitmap_on_stopped_domain_is_broken(vv_qemu, qemu_domain, sandbox,
                                                         tmp_path):
    c, dom = vv_qemu.client, qemu_domain
    create(c, dom, 'c1')
    sandbox.write(dom, 4 * MiB, 1 * MiB, 0x11)
    create(c, dom, 'c2')
    path = disk_path(dom)
    stop_domain(dom)
    assert set(image_bitmaps(path)) == {'c1', 'c2'}
    subprocess.run(['qemu-img', 'bitmap', '--remove', path, 'c1'], check=True)

    r = c.post(f'/v1/domains/{dom}/checkpoints:reconcile')
    assert r.status == 200, r
    actions = [(a['checkpoint'], a['action']) for a in r.json['actions']]
    # The stop's event has the domain reconciled in the background too; when that reconcile
    # ran after the bitmap was removed, it found the loss first, and said so in the log.
    if actions:
        assert actions == [('c1', 'broken')], r.json
        assert "bitmap 'c1' is missing from disk vda" in r.json['actions'][0]['detail']
    else:
        assert re.search(rf"checkpoint 'c1' of domain '{dom}' is broken: .*"
                         r"bitmap 'c1' is missing from disk vda", vv_qemu.log()), vv_qemu.log()

    items = by_name(listing(c, dom))
    assert items['c1']['state'] == 'broken'
    assert "bitmap 'c1' is missing" in items['c1']['reason']
    # Nothing else is harmed.
    assert items['c2']['state'] == 'ok' and items['c2']['reason'] is None
    assert set(image_bitmaps(path)) == {'c2'}
    assert virsh_checkpoints(dom) == {'c1': None, 'c2': 'c1'}
    start_domain(dom)
    sandbox.write(dom, 16 * MiB, 1 * MiB, 0x22)
    items = by_name(listing(c, dom))
    assert items['c1']['state'] == 'broken' and items['c2']['state'] == 'ok', items
    r = c.get(f'/v1/domains/{dom}/checkpoints/c2')
    assert r.status == 200 and r.json['disks'][0]['size_bytes'] == 1 * MiB, r.json
    assert_copied(push_incremental(dom, 'c2', tmp_path), 1 * MiB)
    # A broken checkpoint can be deleted; the healthy one stays.
    assert c.delete(f'/v1/domains/{dom}/checkpoints/c1').status == 204
    items = listing(c, dom)
    assert [(i['name'], i['state']) for i in items] == [('c2', 'ok')]


def test_qemu_failed_validation_marks_broken(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    create(c, dom, 'c1')
    create(c, dom, 'c2')
    path = disk_path(dom)
    # The service is stopped while the domain changes behind it: a reconcile of the stop's
    # event that ran after the metadata was deleted would redefine both unvalidated (the
    # domain is not running then). Started again, every reconcile sees the running domain.
    vv_qemu.stop()
    stop_domain(dom)
    subprocess.run(['qemu-img', 'bitmap', '--remove', path, 'c1'], check=True)
    for n in ('c2', 'c1'):
        virsh('checkpoint-delete', dom, n, '--metadata')
    start_domain(dom)
    vv_qemu.start()
    vv_qemu.wait_ready()
    items = by_name(listing(c, dom, '?refresh=true'))
    assert items['c1']['state'] == 'broken', items['c1']
    assert 'failed validation' in items['c1']['reason'], items['c1']
    assert items['c2']['state'] == 'redefined', items['c2']
    assert 'validated against' in items['c2']['reason']
    # Both are in libvirt again, so that c2 keeps its parent.
    assert virsh_checkpoints(dom) == {'c1': None, 'c2': 'c1'}


def test_qemu_size_bytes_grows_with_guest_writes(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    cp = create(c, dom, 's1')
    assert cp['disks'][0]['size_bytes'] == 0, cp
    sandbox.write(dom, 8 * MiB, 8 * MiB, 'random')
    r = c.get(f'/v1/domains/{dom}/checkpoints/s1')
    assert r.status == 200
    size = r.json['disks'][0]['size_bytes']
    assert 8 * MiB <= size <= 8 * MiB + 128 * 1024, size
    # The list leaves sizes out (they cost a query each).
    assert listing(c, dom)[0]['disks'][0]['size_bytes'] is None


def test_qemu_orphans_are_recorded_then_adopted(vv_qemu, qemu_domain):
    c, dom = vv_qemu.client, qemu_domain
    create(c, dom, 'mine')
    virsh('checkpoint-create-as', dom, 'theirs')
    items = by_name(listing(c, dom, '?refresh=true'))
    assert items['theirs']['state'] == 'orphaned', items
    assert 'not created through virtvault' in items['theirs']['reason']
    assert items['theirs']['parent'] == 'mine'
    assert create(c, dom, 'after')['parent'] == 'theirs'

    # Lost metadata: an orphan that the service's own checkpoints descend from comes back
    # with them (still orphaned), since the chain needs it.
    for n in ('after', 'theirs', 'mine'):
        virsh('checkpoint-delete', dom, n, '--metadata')
    items = by_name(listing(c, dom, '?refresh=true'))
    assert [(n, items[n]['state'], items[n]['in_libvirt']) for n in ('mine', 'theirs', 'after')] \
        == [('mine', 'redefined', True), ('theirs', 'orphaned', True), ('after', 'redefined', True)]
    assert virsh_checkpoints(dom) == {'mine': None, 'theirs': 'mine', 'after': 'theirs'}

    # An orphan nothing of the service's needs is not its to keep: removed behind its back,
    # it is forgotten, not redefined.
    virsh('checkpoint-create-as', dom, 'leaf')
    assert by_name(listing(c, dom, '?refresh=true'))['leaf']['state'] == 'orphaned'
    virsh('checkpoint-delete', dom, 'leaf', '--metadata')
    r = c.post(f'/v1/domains/{dom}/checkpoints:reconcile')
    assert r.status == 200
    assert [(a['checkpoint'], a['action']) for a in r.json['actions']] == [('leaf', 'forgotten')]
    assert 'leaf' not in virsh_checkpoints(dom)
    assert [i['name'] for i in listing(c, dom)] == ['mine', 'theirs', 'after']

    # Adopted, it is the service's like any other.
    r = c.post(f'/v1/domains/{dom}/checkpoints:reconcile', json={'adopt': True})
    assert r.status == 200
    assert [(a['checkpoint'], a['action']) for a in r.json['actions']] == [('theirs', 'adopted')]
    assert by_name(listing(c, dom))['theirs']['state'] == 'ok'
    for n in ('after', 'theirs'):
        virsh('checkpoint-delete', dom, n, '--metadata')
    items = by_name(listing(c, dom, '?refresh=true'))
    assert items['theirs']['state'] == 'redefined' and items['after']['state'] == 'redefined'
    assert virsh_checkpoints(dom) == {'mine': None, 'theirs': 'mine', 'after': 'theirs'}


def test_qemu_names_outside_the_rule_stay_addressable(vv_qemu, qemu_domain):
    c, dom = vv_qemu.client, qemu_domain
    long_name = 'L' * 80  # libvirt takes it; the service would not create it
    virsh('checkpoint-create-as', dom, long_name)
    problem(c.post(f'/v1/domains/{dom}/checkpoints', json={'name': long_name}), 400,
            'invalid_request')
    r = c.get(f'/v1/domains/{dom}/checkpoints/{urllib.parse.quote(long_name)}?refresh=true')
    assert r.status == 200 and r.json['name'] == long_name and r.json['state'] == 'orphaned', r
    assert c.delete(f'/v1/domains/{dom}/checkpoints/{long_name}').status == 204
    assert virsh_checkpoints(dom) == {} and listing(c, dom) == []


def test_qemu_busy_domain_answers_domain_busy(vv_qemu, qemu_domain, tmp_path):
    c, dom = vv_qemu.client, qemu_domain
    create(c, dom, 'b1')
    sock = tmp_path / 'nbd.sock'
    xml = tmp_path / 'pull.xml'
    xml.write_text(f"<domainbackup mode='pull'><server transport='unix' socket='{sock}'/>"
                   f"<disks><disk name='vda' backupmode='full' type='file'>"
                   f"<scratch file='{tmp_path / 'scratch.qcow2'}'/></disk></disks></domainbackup>")
    virsh('backup-begin', dom, str(xml))
    try:
        p = problem(c.post(f'/v1/domains/{dom}/checkpoints', json={'name': 'b2'}), 409,
                    'domain_busy')
        assert 'backup' in p['detail'], p
        problem(c.delete(f'/v1/domains/{dom}/checkpoints/b1'), 409, 'domain_busy')
        # Reading is never refused.
        assert [i['name'] for i in listing(c, dom)] == ['b1']
    finally:
        virsh('domjobabort', dom)
    wait_for('the job to end', lambda: c.post(f'/v1/domains/{dom}/checkpoints',
                                               json={'name': 'b2'}).status == 201)
    assert [i['name'] for i in listing(c, dom)] == ['b1', 'b2']


def test_qemu_delete_on_a_stopped_domain(vv_qemu, qemu_domain):
    c, dom = vv_qemu.client, qemu_domain
    for n in ('d1', 'd2', 'd3'):
        create(c, dom, n)
    path = disk_path(dom)
    stop_domain(dom)
    p = problem(c.delete(f'/v1/domains/{dom}/checkpoints/d2'), 409, 'conflict')
    assert 'metadata_only=true' in p['detail'], p
    assert [i['name'] for i in listing(c, dom)] == ['d1', 'd2', 'd3']
    assert c.delete(f'/v1/domains/{dom}/checkpoints/d2?metadata_only=true').status == 204
    items = listing(c, dom)
    assert [(i['name'], i['parent'], i['state']) for i in items] == [('d1', None, 'ok'),
                                                                   ('d3', 'd1', 'ok')]
    assert virsh_checkpoints(dom) == {'d1': None, 'd3': 'd1'}
    # Metadata only: the bitmap stays in the image.
    assert set(image_bitmaps(path)) == {'d1', 'd2', 'd3'}


def test_qemu_busy_with_a_job_of_the_service(vv_qemu, qemu_domain):
    """A snapshot job claims the domain: checkpoint changes answer domain_busy meanwhile."""
    c, dom = vv_qemu.client, qemu_domain
    create(c, dom, 'j0')
    seen = []
    for attempt in range(5):
        r = c.post(f'/v1/domains/{dom}/snapshots', json={'name': f'full{attempt}'})
        assert r.status == 202, r
        job = r.json['id']
        answer = c.post(f'/v1/domains/{dom}/checkpoints', json={'name': f'during{attempt}'})
        c.wait_job(job)
        if answer.status == 409:
            p = problem(answer, 409, 'domain_busy')
            assert job in p['detail'] or 'snapshot' in p['detail'], p
            seen.append(attempt)
            break
        assert answer.status == 201, answer  # the job was quicker than the request
    assert seen, 'no checkpoint request met the running snapshot job'
    assert create(c, dom, 'after-job')['state'] == 'ok'
    assert [i['name'] for i in listing(c, dom)][-1] == 'after-job'


# ------------------------------------------------- reads from the catalog, and how fresh

def test_qemu_reads_catch_up_with_changes_behind_the_service(make_daemon, qemu_domain):
    """Reads answer from the catalog: what the service does shows at once, what virsh does
    behind its back shows after the next reconcile (background, or refresh=true)."""
    d = make_daemon('qemu:///system', args=['--reconcile-max-age', '1']).start()
    d.wait_ready()
    c, dom = d.client, qemu_domain
    create(c, dom, 'mine')  # reconciles first, then creates
    virsh('checkpoint-create-as', dom, 'theirs')
    # No event tells of it and no read asked for a reconcile since: the first read answers
    # from the catalog (whatever the time since), where it is not yet, but the service's own
    # checkpoint is.
    assert [i['name'] for i in listing(c, dom)] == ['mine']
    # A read that finds the last reconcile older than a second queues one; it shows soon after.
    wait_for('the background reconcile to record it',
             lambda: 'theirs' in by_name(listing(c, dom)), timeout=20)
    assert by_name(listing(c, dom))['theirs']['state'] == 'orphaned'

    # refresh=true reconciles before answering: metadata lost just now comes back in that answer.
    virsh('checkpoint-delete', dom, 'mine', '--metadata')
    assert 'mine' not in virsh_checkpoints(dom)
    item = by_name(listing(c, dom, '?refresh=true'))['mine']
    assert item['state'] == 'redefined' and item['in_libvirt'], item
    assert 'mine' in virsh_checkpoints(dom)
    r = c.get(f'/v1/domains/{dom}/checkpoints/mine?refresh=true')
    assert r.status == 200 and r.json['state'] == 'redefined', r

    # What the service deletes is gone from the next answer, with no wait.
    assert c.delete(f'/v1/domains/{dom}/checkpoints/theirs').status == 204
    assert [i['name'] for i in listing(c, dom)] == ['mine']
    problem(c.get(f'/v1/domains/{dom}/checkpoints/mine?refresh=maybe'), 400, 'invalid_request')
    problem(c.get(f'/v1/domains/{dom}/checkpoints?refresh=2'), 400, 'invalid_request')


def test_qemu_max_age_zero_reconciles_before_every_read(make_daemon, qemu_domain):
    d = make_daemon('qemu:///system', args=['--reconcile-max-age', '0']).start()
    d.wait_ready()
    c, dom = d.client, qemu_domain
    create(c, dom, 'c1')
    virsh('checkpoint-delete', dom, 'c1', '--metadata')
    item = by_name(listing(c, dom))['c1']
    assert item['state'] == 'redefined' and item['in_libvirt'], item
    virsh('checkpoint-create-as', dom, 'outside')
    assert by_name(listing(c, dom))['outside']['state'] == 'orphaned'


def test_listing_follows_every_write_at_once(vv_test):
    """The kept listing is never served once the catalog changed: creates, deletes and a
    reconcile that adopts show in the very next answer, for every filter."""
    c = vv_test.client
    seen = []
    for i in range(5):
        create(c, 'test', f'w{i}')
        seen.append(f'w{i}')
        assert [x['name'] for x in listing(c, 'test')] == seen
        assert [x['name'] for x in listing(c, 'test', '?leaves=true')] == [f'w{i}']
        assert [x['name'] for x in listing(c, 'test', '?roots=true')] == ['w0']
    assert c.delete('/v1/domains/test/checkpoints/w4').status == 204
    assert [x['name'] for x in listing(c, 'test', '?leaves=true')] == ['w3']
    assert c.delete('/v1/domains/test/checkpoints/w0?children=true').status == 204
    assert listing(c, 'test') == [] and listing(c, 'test', '?roots=true') == []
