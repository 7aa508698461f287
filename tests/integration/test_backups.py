"""Push backups against real QEMU domains: chains, restore, verify, cancel, crash recovery,
the catalog and the event stream.

Guest writes go through the guest's own device (scripts/sandbox write), so dirty bitmaps see
them; bulk data that needs no tracking is written into the image before the domain starts.
Every point in time a test restores is kept aside as a raw copy and compared with
`qemu-img compare`.
"""
import json
import os
import socket
import subprocess
import time

import pytest

from helpers import (MiB, checkpoints, disk_path, keep, libvirt_reads_of, prefilled_domain,
                     same_disk, virsh)


# ------------------------------------------------------------------------------------------
# helpers

def libvirt_job_running(dom):
    out = virsh('domjobinfo', dom, check=False).stdout
    return 'Job type:' in out and 'None' not in out.split('Job type:')[1].splitlines()[0]


@pytest.fixture
def domain(sandbox):
    """A running 256 MiB sandbox domain."""
    with sandbox.domain(size='256M') as name:
        yield name


def start_backup(c, dom, **body):
    r = c.post(f'/v1/domains/{dom}/backups', json=body)
    assert r.status == 202, r
    assert r.headers['location'] == f'/v1/jobs/{r.json["job_id"]}'
    assert r.json['state'] == 'running'
    return r.json


def backup(c, dom, **body):
    b = start_backup(c, dom, **body)
    job = c.wait_job(b['job_id'])
    assert job['state'] == 'succeeded', job
    assert job['result']['backup_id'] == b['id']
    r = c.get(f'/v1/domains/{dom}/backups/{b["id"]}')
    assert r.status == 200
    b = r.json
    assert b['state'] == 'completed', b
    return b


def restore(c, dom, backup_id, target_dir, fmt='raw', define=None):
    body = {'target_dir': target_dir, 'format': fmt}
    if define:
        body['define'] = {'name': define}
    r = c.post(f'/v1/domains/{dom}/backups/{backup_id}/restore', json=body)
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    return job['result']


def verify(c, dom, backup_id):
    r = c.post(f'/v1/domains/{dom}/backups/{backup_id}/verify')
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    return job['result']


def wait_running(c, job_id, timeout=30):
    """Waits until the job runs and libvirt reported progress."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = c.get(f'/v1/jobs/{job_id}').json
        assert j['state'] in ('queued', 'running'), j
        if j['state'] == 'running' and j['progress']['bytes_total'] > 0:
            return j
        time.sleep(0.1)
    raise AssertionError(f'job {job_id} did not start running')


def vault_files(vv, backup_id):
    found = []
    for root, _, files in os.walk(vv.vault_dir):
        found += [os.path.join(root, f) for f in files if f.startswith(backup_id)]
    return found


# ------------------------------------------------------------------------------------------
# tests

def test_backups_answer_unsupported_on_the_test_driver(vv_test):
    c = vv_test.client
    r = c.post('/v1/domains/test/backups', json={'type': 'full'})
    assert r.status == 501, r
    assert r.json['code'] == 'unsupported'
    assert 'test driver' in r.json['detail']
    r = c.get('/v1/domains/test/backups')
    assert r.status == 200 and r.json['items'] == []


def test_bad_requests_are_refused(vv_qemu, domain):
    c = vv_qemu.client
    for body, what, pointer in [
            ({'type': 'weekly'}, 'type', '/type'), ({'type': 'full', 'since': 'x'}, 'since', '/since'),
            ({'disks': ['vdz']}, 'vdz', '/disks/0'), ({'disks': []}, 'disks', '/disks'),
            ({'bandwidth': -1}, 'bandwidth', '/bandwidth'), ({'colour': 'red'}, 'colour', '/colour'),
            ({'type': 3}, 'type', '/type'),
            # What push mode would ignore is refused instead.
            ({'mode': 'push', 'target': 'vault'}, 'target', '/target'),
            ({'target': 'vault'}, 'target', '/target'),
            ({'mode': 'pull', 'bandwidth': 10}, 'bandwidth', '/bandwidth')]:
        r = c.post(f'/v1/domains/{domain}/backups', json=body)
        assert r.status == 400, (body, r)
        assert what in r.json['detail'], (body, r.json)
        assert r.json['errors'][0]['pointer'] == pointer, (body, r.json)
        assert 'Expected ' not in r.json['detail'] and 'got ' not in r.json['detail'], r.json
    r = c.post(f'/v1/domains/{domain}/backups', json={'type': 'incremental'})
    assert r.status == 409, r
    assert 'full backup first' in r.json['detail']
    assert c.get(f'/v1/domains/{domain}/backups').json['items'] == []
    assert c.get('/v1/domains/no-such-domain/backups').status == 404


def test_chain_restores_every_point_and_differential(vv_qemu, domain, sandbox, tmp_path):
    c = vv_qemu.client
    size = 256 * MiB
    restore_root = os.path.join(vv_qemu.vault_dir, 'restore')

    # A: a full backup.
    sandbox.write(domain, 0, 24 * MiB, 0xa1)
    keep(domain, size, str(tmp_path / 'a.raw'))
    full = backup(c, domain, type='full')
    assert full['type'] == 'full' and full['parent_id'] is None
    assert full['base_checkpoint'] is None and full['checkpoint']
    assert full['chain_id'] == full['id']
    assert full['disk_size'] == size
    assert 24 * MiB <= full['stored_bytes'] < 26 * MiB, full
    assert full['disks'][0]['sha256'] and full['disks'][0]['backing'] is None
    assert full['checkpoint'] in checkpoints(domain)
    # Its XML was stored with it: the checkpoints API knows it as a healthy one.
    cp = c.get(f'/v1/domains/{domain}/checkpoints/{full["checkpoint"]}')
    assert cp.status == 200 and cp.json['state'] == 'ok', cp

    # B over part of A: an incremental holds what changed, not the disk.
    sandbox.write(domain, 16 * MiB, 16 * MiB, 0xb2)
    keep(domain, size, str(tmp_path / 'b.raw'))
    inc1 = backup(c, domain, type='incremental')
    assert inc1['parent_id'] == full['id'] and inc1['chain_id'] == full['id']
    assert inc1['base_checkpoint'] == full['checkpoint']
    assert inc1['disks'][0]['backing'] == os.path.basename(full['disks'][0]['file'])
    assert 16 * MiB <= inc1['stored_bytes'] <= 16 * MiB * 1.05, inc1

    # C elsewhere, random data: `auto` is an incremental now.
    sandbox.write(domain, 100 * MiB, 16 * MiB, 'random')
    keep(domain, size, str(tmp_path / 'c.raw'))
    inc2 = backup(c, domain)
    assert inc2['type'] == 'incremental' and inc2['parent_id'] == inc1['id']
    assert 16 * MiB <= inc2['stored_bytes'] <= 16 * MiB * 1.05, inc2

    # Each point restores exactly, raw and qcow2.
    for b, ref in [(full, 'a.raw'), (inc1, 'b.raw'), (inc2, 'c.raw')]:
        res = restore(c, domain, b['id'], os.path.join(restore_root, b['id']))
        assert res['domain'] is None and res['disks'][0]['target'] == 'vda'
        same_disk(res['disks'][0]['path'], str(tmp_path / ref))
    res = restore(c, domain, inc1['id'], os.path.join(restore_root, 'q'), fmt='qcow2')
    path = res['disks'][0]['path']
    assert path.endswith('.qcow2')
    info = json.loads(subprocess.run(['qemu-img', 'info', '--output=json', path],
                                     check=True, capture_output=True).stdout)
    assert info['format'] == 'qcow2' and 'backing-filename' not in info
    same_disk(path, str(tmp_path / 'b.raw'))

    # Existing files are never replaced; folders outside the roots are refused.
    r = c.post(f'/v1/domains/{domain}/backups/{full["id"]}/restore',
               json={'target_dir': os.path.join(restore_root, full['id']),
                     'format': 'raw'})
    assert r.status == 202
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'failed' and 'exists already' in job['error']['detail'], job
    for bad in [str(tmp_path), os.path.join(restore_root, '..', 'x'), 'relative/dir']:
        r = c.post(f'/v1/domains/{domain}/backups/{full["id"]}/restore',
                   json={'target_dir': bad, 'format': 'raw'})
        assert r.status == 400, (bad, r)

    # A differential from the first checkpoint holds B and C, and restores to C.
    diff = backup(c, domain, type='differential', since=full['checkpoint'])
    assert diff['type'] == 'differential' and diff['parent_id'] == full['id']
    assert diff['base_checkpoint'] == full['checkpoint']
    assert 32 * MiB <= diff['stored_bytes'] <= 32 * MiB * 1.05, diff
    res = restore(c, domain, diff['id'], os.path.join(restore_root, diff['id']))
    same_disk(res['disks'][0]['path'], str(tmp_path / 'c.raw'))

    # The catalog: newest first, filtered, paged.
    items = c.get(f'/v1/domains/{domain}/backups').json['items']
    assert [b['id'] for b in items] == [diff['id'], inc2['id'], inc1['id'], full['id']]
    page = c.get(f'/v1/domains/{domain}/backups?type=incremental&limit=1').json
    assert page['total'] == 2 and [b['id'] for b in page['items']] == [inc2['id']]
    page = c.get(f'/v1/domains/{domain}/backups?type=incremental&limit=1'
                 f"&page_token={page['next_page_token']}").json
    assert page['total'] == 2 and [b['id'] for b in page['items']] == [inc1['id']]
    assert page['next_page_token'] is None
    page = c.get(f'/v1/domains/{domain}/backups?type=incremental&limit=1&offset=1').json
    assert [b['id'] for b in page['items']] == [inc1['id']], 'the deprecated offset'
    assert c.get(f'/v1/domains/{domain}/backups?state=failed').json['items'] == []

    # Delete: refused while others depend on it, naming them; a leaf goes; then the chain.
    r = c.delete(f'/v1/domains/{domain}/backups/{full["id"]}')
    assert r.status == 409, r
    for dep in (inc1['id'], diff['id']):
        assert dep in r.json['detail']
    r = c.delete(f'/v1/domains/{domain}/backups/{inc2["id"]}')
    assert r.status == 200 and r.json['deleted'] == [inc2['id']]
    assert vault_files(vv_qemu, inc2['id']) == []
    assert c.get(f'/v1/domains/{domain}/backups/{inc2["id"]}').status == 404
    r = c.delete(f'/v1/domains/{domain}/backups/{inc1["id"]}?chain=true')
    assert r.status == 200
    assert sorted(r.json['deleted']) == sorted([full['id'], inc1['id'], diff['id']])
    assert c.get(f'/v1/domains/{domain}/backups').json['items'] == []
    assert not os.path.exists(os.path.join(vv_qemu.vault_dir, full['domain_uuid'],
                                           full['chain_id']))


def test_restore_defines_a_new_domain(vv_qemu, domain, sandbox, tmp_path):
    c = vv_qemu.client
    sandbox.write(domain, 0, 4 * MiB, 0x3c)
    keep(domain, 256 * MiB, str(tmp_path / 'x.raw'))
    b = backup(c, domain, type='full')
    name = domain + '-restored'
    target = os.path.join(vv_qemu.vault_dir, 'restore', 'def')
    try:
        res = restore(c, domain, b['id'], target, fmt='qcow2', define=name)
        assert res['domain']['name'] == name
        xml = virsh('dumpxml', name).stdout
        orig = virsh('dumpxml', domain).stdout
        uuid = xml.split('<uuid>')[1].split('<')[0]
        assert uuid == res['domain']['uuid'] and uuid not in orig
        assert res['disks'][0]['path'] in xml and "type='qcow2'" in xml
        same_disk(res['disks'][0]['path'], str(tmp_path / 'x.raw'))
        r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/restore',
                   json={'target_dir': target + '2', 'define': {'name': name}})
        assert r.status == 409, r
    finally:
        virsh('undefine', name, check=False)


# What the original's definition holds that a clone must not share: libvirt 9.0 accepts all
# of it in the persistent definition without the devices existing.
RISKY_OS = ("<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>",)
RISKY_DEVICES = (
    "<disk type='block' device='lun'><driver name='qemu' type='raw'/>"
    "<source dev='/dev/vv-no-such-lun'/><target dev='sdz' bus='scsi'/></disk>",
    "<filesystem type='mount' accessmode='passthrough'><source dir='/srv/vv-share'/>"
    "<target dir='vvshare'/></filesystem>",
    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/></source></hostdev>",
    "<serial type='pty'><log file='/var/log/vv-orig-serial.log' append='on'/>"
    "<target port='0'/></serial>",
    "<serial type='file'><source path='/var/log/vv-orig-out.log'/><target port='1'/></serial>",
    "<graphics type='vnc' port='5917' autoport='no' listen='0.0.0.0' passwd='s3cret'>"
    "<listen type='address' address='0.0.0.0'/></graphics>",
)


def add_risky_devices(dom, nvram):
    """Redefines dom (running: its next-boot definition) with RISKY_DEVICES, ACPI and a UEFI
    variable store at nvram; returns the XML to put back before removing it."""
    import xml.etree.ElementTree as ET
    before = virsh('dumpxml', '--inactive', '--security-info', dom).stdout
    root = ET.fromstring(before)
    os_el = root.find('os')
    for frag in RISKY_OS:
        os_el.append(ET.fromstring(frag))
    ET.SubElement(os_el, 'nvram').text = nvram
    if root.find('features') is None:
        root.insert(list(root).index(os_el) + 1, ET.Element('features'))
    ET.SubElement(root.find('features'), 'acpi')
    for frag in RISKY_DEVICES:
        root.find('devices').append(ET.fromstring(frag))
    path = nvram + '.xml'
    with open(path, 'w') as f:
        f.write(ET.tostring(root, encoding='unicode'))
    virsh('define', path)
    return before


def test_restore_defines_a_safe_clone(vv_qemu, domain, sandbox, tmp_path):
    import xml.etree.ElementTree as ET
    c = vv_qemu.client
    nvram = str(tmp_path / 'orig_VARS.fd')
    with open(nvram, 'wb') as f:
        f.write(b'vars of the original' * 100)
    before = add_risky_devices(domain, nvram)
    clones = []
    try:
        b = backup(c, domain, type='full')
        target = os.path.join(vv_qemu.vault_dir, 'restore', 'safe')
        name = domain + '-safe'
        clones.append(name)
        res = restore(c, domain, b['id'], target, fmt='qcow2', define=name)
        xml = virsh('dumpxml', '--inactive', '--security-info', name).stdout
        root = ET.fromstring(xml)
        devs = root.find('devices')

        # Graphics on loopback, no password, no fixed port of the original.
        g = devs.find('graphics')
        assert g.get('listen') == '127.0.0.1' and g.get('passwd') is None, xml
        assert [l.get('address') for l in g.findall('listen')] == ['127.0.0.1'], xml
        assert g.get('autoport') == 'yes' and g.get('port') in (None, '-1'), xml
        # No host folder, host device or lun; no log or output file of the original.
        assert devs.find('filesystem') is None and devs.find('hostdev') is None, xml
        assert [d.find('target').get('dev') for d in devs.findall('disk')] == ['vda'], xml
        assert 'vv-orig' not in xml and '/srv/vv-share' not in xml, xml
        assert sorted(s.get('type') for s in devs.findall('serial')) == ['null', 'pty'], xml
        # A variable store of its own, next to the disks, with the original's content.
        own = root.find('os/nvram').text
        assert own == os.path.join(target, name + '_VARS.fd'), xml
        with open(own, 'rb') as f1, open(nvram, 'rb') as f2:
            assert f1.read() == f2.read()

        changes = res['domain']['changes']
        kinds = {ch['what'] for ch in changes}
        assert {'name', 'uuid', 'disk', 'lun', 'nvram', 'graphics', 'filesystem', 'hostdev',
                'log'} <= kinds, changes
        assert all(isinstance(ch['detail'], str) and ch['detail'] for ch in changes), changes
        assert any('password' in ch['detail'] for ch in changes if ch['what'] == 'graphics')
        assert sum(ch['what'] == 'log' for ch in changes) >= 2, changes

        # Removing the clone with its NVRAM leaves the original's alone.
        virsh('undefine', '--nvram', name)
        clones.remove(name)
        assert not os.path.exists(own) and os.path.exists(nvram)

        # What the request asks to keep is kept; anything else in keep is refused.
        kept = domain + '-kept'
        r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/restore',
                   json={'target_dir': target + '2', 'format': 'qcow2',
                         'define': {'name': kept,
                                    'keep': ['hostdev', 'filesystem', 'logs', 'lun']}})
        assert r.status == 202, r
        clones.append(kept)
        job = c.wait_job(r.json['id'])
        assert job['state'] == 'succeeded', job
        xml = virsh('dumpxml', '--inactive', kept).stdout
        assert '/srv/vv-share' in xml and '<hostdev' in xml and "device='lun'" in xml, xml
        assert 'vv-orig-serial.log' in xml and 'vv-orig-out.log' in xml, xml
        assert "listen='127.0.0.1'" in xml, xml
        for keep in (['all'], ['hostdev', 'hostdev'], 'hostdev', [1], ['lun'] * 5):
            r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/restore',
                       json={'target_dir': target + '3', 'define': {'name': domain + '-x',
                                                                    'keep': keep}})
            assert r.status == 400 and 'keep' in r.json['detail'], (keep, r)
    finally:
        for n in clones:
            virsh('undefine', '--nvram', n, check=False)
        with open(nvram + '.before', 'w') as f:
            f.write(before)
        virsh('define', nvram + '.before', check=False)


def test_incremental_after_libvirt_lost_the_checkpoint(vv_qemu, domain, sandbox, tmp_path):
    c = vv_qemu.client
    sandbox.write(domain, 0, 4 * MiB, 0x11)
    full = backup(c, domain, type='full')
    sandbox.write(domain, 64 * MiB, 4 * MiB, 0x22)
    keep(domain, 256 * MiB, str(tmp_path / 'now.raw'))
    # libvirt forgets the metadata; the bitmap stays in the image.
    virsh('checkpoint-delete', domain, full['checkpoint'], '--metadata')
    assert full['checkpoint'] not in checkpoints(domain)
    inc = backup(c, domain, type='incremental')
    assert inc['parent_id'] == full['id'] and full['checkpoint'] in checkpoints(domain)
    assert 4 * MiB <= inc['stored_bytes'] <= 5 * MiB, inc
    res = restore(c, domain, inc['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'l'))
    same_disk(res['disks'][0]['path'], str(tmp_path / 'now.raw'))

    # A disk that changed size starts a new chain under auto, and is refused to incremental.
    virsh('blockresize', domain, 'vda', '320M')
    r = c.post(f'/v1/domains/{domain}/backups', json={'type': 'incremental'})
    assert r.status == 409 and 'changed size' in r.json['detail'], r
    nxt = backup(c, domain)
    assert nxt['type'] == 'full' and nxt['chain_id'] == nxt['id'], nxt


def test_a_backup_create_looks_the_domain_up_once_and_reads_its_xml_once(vv_qemu, domain,
                                                                        sandbox):
    c = vv_qemu.client
    name_or_uuid = [domain, virsh('domuuid', domain).stdout.strip()]
    bodies = [dict(type='full'), dict(type='incremental'), dict(),
              dict(type='incremental', mode='pull', target='vault')]
    for i, body in enumerate(bodies):
        sandbox.write(domain, i * MiB, MiB, 0x30 + i)
        b = backup(c, name_or_uuid[i % 2], **body)
        assert b['type'] == ('full' if i == 0 else 'incremental'), b
        assert libvirt_reads_of(vv_qemu, b['id']) == (1, 1), (body, b['id'])


def test_restore_to_files_without_libvirt(vv_qemu, domain, sandbox, make_daemon, tmp_path):
    c = vv_qemu.client
    sandbox.write(domain, 0, 4 * MiB, 0x5e)
    keep(domain, 256 * MiB, str(tmp_path / 'x.raw'))
    b = backup(c, domain, type='full')
    assert vv_qemu.stop() == 0

    # The same database and vault, and a libvirt that cannot be reached.
    d = make_daemon('qemu+unix:///system?socket=/nonexistent/libvirt-sock',
                    workdir=vv_qemu.dir).start()
    c = d.client
    assert c.get('/readyz').status == 503
    assert c.post(f'/v1/domains/{domain}/backups', json={}).status == 503
    for who in (domain, b['domain_uuid']):
        items = c.get(f'/v1/domains/{who}/backups').json['items']
        assert [i['id'] for i in items] == [b['id']]
    res = restore(c, domain, b['id'], os.path.join(d.vault_dir, 'restore', 'offline'))
    same_disk(res['disks'][0]['path'], str(tmp_path / 'x.raw'))
    assert verify(c, domain, b['id'])['ok'] is True
    r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/restore',
               json={'target_dir': os.path.join(d.vault_dir, 'restore', 'o2'),
                     'define': {'name': domain + '-x'}})
    assert r.status == 503, r


def test_verify_finds_a_flipped_byte(vv_qemu, domain, sandbox):
    c = vv_qemu.client
    sandbox.write(domain, 0, 8 * MiB, 0x42)
    full = backup(c, domain, type='full')
    sandbox.write(domain, 4 * MiB, 1 * MiB, 0x43)
    inc = backup(c, domain, type='incremental')

    res = verify(c, domain, inc['id'])
    assert res['ok'] is True and res['files'] == 2 and res['backups'] == 2, res
    got = c.get(f'/v1/domains/{domain}/backups/{inc["id"]}').json['verification']
    assert got['ok'] is True and got['problems'] == [] and got['checked_at']

    # One byte in the data area of the full image, under the incremental.
    path = os.path.join(vv_qemu.vault_dir, full['disks'][0]['file'])
    with open(path, 'r+b') as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xff]))
    res = verify(c, domain, inc['id'])
    assert res['ok'] is False, res
    assert 'checksum mismatch' in res['problems'] and full['id'] in res['problems'], res
    got = c.get(f'/v1/domains/{domain}/backups/{inc["id"]}').json['verification']
    assert got['ok'] is False and any('checksum mismatch' in p for p in got['problems'])

    # A missing backing file is named too.
    os.rename(path, path + '.away')
    res = verify(c, domain, inc['id'])
    assert res['ok'] is False and 'missing' in res['problems'], res


def test_cancel_leaves_nothing_and_next_auto_is_correct(vv_qemu, sandbox, tmp_path):
    c = vv_qemu.client
    with prefilled_domain(sandbox, '1G', '384M') as dom:
        full = backup(c, dom, type='full')
        sandbox.write(dom, 600 * MiB, 4 * MiB, 0x77)

        # Throttled so that it is still running when cancelled.
        b = start_backup(c, dom, type='full', bandwidth=MiB)
        wait_running(c, b['job_id'])
        r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'full'})
        assert r.status == 409 and r.json['code'] == 'domain_busy', r
        assert b['job_id'] in r.json['detail']
        r = c.delete(f'/v1/jobs/{b["job_id"]}')
        assert r.status in (200, 202), r
        job = c.wait_job(b['job_id'])
        assert job['state'] == 'cancelled', job

        got = c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json
        assert got['state'] == 'cancelled' and got['disks'] == [] and got['error'], got
        assert vault_files(vv_qemu, b['id']) == []
        assert b['checkpoint'] not in checkpoints(dom)
        assert c.get(f'/v1/domains/{dom}/checkpoints/{b["checkpoint"]}').status == 404
        assert full['checkpoint'] in checkpoints(dom)
        assert not libvirt_job_running(dom)

        sandbox.write(dom, 700 * MiB, 4 * MiB, 0x88)
        keep(dom, 1 << 30, str(tmp_path / 'now.raw'))
        nxt = backup(c, dom)
        assert nxt['type'] == 'incremental' and nxt['parent_id'] == full['id'], nxt
        assert 8 * MiB <= nxt['stored_bytes'] <= 8 * MiB * 1.1, nxt
        res = restore(c, dom, nxt['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'n'))
        same_disk(res['disks'][0]['path'], str(tmp_path / 'now.raw'))


def test_cancel_stops_a_throttled_restore_at_once_and_leaves_no_file(vv_qemu, sandbox):
    """qemu-img starts with a clean signal mask: a cancel ends the restore within 2 s (before,
    the daemon's blocked SIGTERM was inherited and qemu-img wrote on until it was done)."""
    c = vv_qemu.client
    with prefilled_domain(sandbox, '2G', '64M') as dom:
        b = backup(c, dom, type='full')
        target = os.path.join(vv_qemu.vault_dir, 'restore', 'cancelled')
        # 2 GiB at 4 MiB/s: minutes, unless the cancel stops it.
        r = c.post(f'/v1/domains/{dom}/backups/{b["id"]}/restore',
                   json={'target_dir': target, 'format': 'raw', 'bandwidth': 4 * MiB})
        assert r.status == 202, r
        job_id = r.json['id']
        deadline = time.time() + 30
        while not any(f.endswith('.part') for f in os.listdir(target)):
            assert time.time() < deadline, 'qemu-img did not start writing'
            assert c.get(f'/v1/jobs/{job_id}').json['state'] in ('queued', 'running')
            time.sleep(0.05)
        t0 = time.time()
        r = c.delete(f'/v1/jobs/{job_id}')
        assert r.status in (200, 202), r
        job = c.wait_job(job_id, timeout=10)
        took = time.time() - t0
        assert job['state'] == 'cancelled', job
        assert took < 2, f'cancelled after {took:.1f} s'
        assert os.listdir(target) == []
        # The domain is free again at once.
        backup(c, dom, type='incremental')


def test_restore_bandwidth_is_checked(vv_qemu, domain):
    c = vv_qemu.client
    b = backup(c, domain, type='full')
    target = os.path.join(vv_qemu.vault_dir, 'restore', 'bw')
    for bad in (-1, 'fast', 1.5):
        r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/restore',
                   json={'target_dir': target, 'bandwidth': bad})
        assert r.status == 400 and r.json['code'] == 'invalid_request', r


def test_kill_mid_backup_libvirt_finishes_meanwhile(vv_qemu, sandbox, tmp_path):
    c = vv_qemu.client
    with prefilled_domain(sandbox, '1G', '384M') as dom:
        keep(dom, 1 << 30, str(tmp_path / 'full.raw'))
        b = start_backup(c, dom, type='full', bandwidth=64 * MiB)
        wait_running(c, b['job_id'])
        vv_qemu.kill()
        deadline = time.time() + 60
        while libvirt_job_running(dom):
            assert time.time() < deadline, 'libvirt job did not end'
            time.sleep(0.2)

        vv_qemu.start()
        vv_qemu.wait_ready()
        job = c.wait_job(b['job_id'])
        assert job['state'] == 'succeeded', job
        got = c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json
        assert got['state'] == 'completed' and got['disks'][0]['sha256'], got
        assert verify(c, dom, b['id'])['ok'] is True
        res = restore(c, dom, b['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'k'))
        same_disk(res['disks'][0]['path'], str(tmp_path / 'full.raw'))

        sandbox.write(dom, 500 * MiB, 2 * MiB, 0x99)
        keep(dom, 1 << 30, str(tmp_path / 'next.raw'))
        nxt = backup(c, dom)
        assert nxt['type'] == 'incremental' and nxt['parent_id'] == b['id'], nxt
        res = restore(c, dom, nxt['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'k2'))
        same_disk(res['disks'][0]['path'], str(tmp_path / 'next.raw'))


def test_kill_mid_backup_libvirt_job_aborted_meanwhile(vv_qemu, sandbox, tmp_path):
    c = vv_qemu.client
    with prefilled_domain(sandbox, '1G', '384M') as dom:
        b = start_backup(c, dom, type='full', bandwidth=MiB)
        wait_running(c, b['job_id'])
        vv_qemu.kill()
        virsh('domjobabort', dom)

        vv_qemu.start()
        vv_qemu.wait_ready()
        job = c.wait_job(b['job_id'])
        assert job['state'] == 'failed', job
        assert 'aborted' in job['error']['detail'], job
        got = c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json
        assert got['state'] == 'failed' and got['disks'] == [], got
        assert 'aborted' in got['error']['detail']
        assert vault_files(vv_qemu, b['id']) == []
        assert b['checkpoint'] not in checkpoints(dom)

        keep(dom, 1 << 30, str(tmp_path / 'now.raw'))
        nxt = backup(c, dom)
        assert nxt['type'] == 'full', nxt
        res = restore(c, dom, nxt['id'], os.path.join(vv_qemu.vault_dir, 'restore', 'a'))
        same_disk(res['disks'][0]['path'], str(tmp_path / 'now.raw'))


def test_kill_mid_backup_resumed_job_is_followed_and_cancelled(vv_qemu, sandbox):
    c = vv_qemu.client
    with prefilled_domain(sandbox, '1G', '384M') as dom:
        b = start_backup(c, dom, type='full', bandwidth=MiB)
        wait_running(c, b['job_id'])
        vv_qemu.kill()
        assert libvirt_job_running(dom)

        vv_qemu.start()
        vv_qemu.wait_ready()
        j = c.get(f'/v1/jobs/{b["job_id"]}').json
        assert j['state'] == 'running', j
        r = c.post(f'/v1/domains/{dom}/backups', json={})
        assert r.status == 409 and b['job_id'] in r.json['detail'], r
        before = j['progress']['bytes_done']
        deadline = time.time() + 20
        while c.get(f'/v1/jobs/{b["job_id"]}').json['progress']['bytes_done'] <= before:
            assert time.time() < deadline, 'the resumed job reports no progress'
            time.sleep(0.3)

        assert c.delete(f'/v1/jobs/{b["job_id"]}').status in (200, 202)
        job = c.wait_job(b['job_id'])
        assert job['state'] == 'cancelled', job
        got = c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json
        assert got['state'] == 'cancelled' and got['disks'] == [], got
        assert vault_files(vv_qemu, b['id']) == []
        assert b['checkpoint'] not in checkpoints(dom)
        assert not libvirt_job_running(dom)


def read_events(sock, until, timeout=60):
    """Reads SSE events from sock until until(event, data) is true; returns them all."""
    buf = b''
    events = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        sock.settimeout(max(0.1, deadline - time.time()))
        chunk = sock.recv(65536)
        assert chunk, 'the event stream closed'
        buf += chunk
        while b'\n\n' in buf:
            block, buf = buf.split(b'\n\n', 1)
            fields = {}
            for line in block.decode().splitlines():
                if line.startswith(':') or ':' not in line:
                    continue
                k, v = line.split(':', 1)
                fields[k] = v.lstrip(' ')
            if 'event' in fields:
                ev = (fields['event'], json.loads(fields['data']), int(fields['id']))
                events.append(ev)
                if until(ev[0], ev[1]):
                    return events
    raise AssertionError(f'no such event; saw {events}')


def test_event_stream_carries_job_progress_and_states(vv_qemu, domain):
    c = vv_qemu.client
    sock = socket.create_connection(('127.0.0.1', vv_qemu.port))
    try:
        sock.sendall(b'GET /v1/events HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
        head = b''
        while b'\r\n\r\n' not in head:
            head += sock.recv(1)
        assert b' 200 ' in head.split(b'\r\n')[0] and b'text/event-stream' in head
        b = start_backup(c, domain, type='full')
        events = read_events(sock, lambda e, d: e == 'job' and d['id'] == b['job_id']
                             and d['state'] in ('succeeded', 'failed'))
        virsh('suspend', domain)
        virsh('resume', domain)
        events += read_events(sock, lambda e, d: e == 'domain' and d['domain'] == domain
                              and d['event'] == 'resumed')
    finally:
        sock.close()
    mine = [d for e, d, _ in events if e == 'job' and d['id'] == b['job_id']]
    assert mine[-1]['state'] == 'succeeded' and mine[-1]['kind'] == 'backup', mine
    assert 'running' in [d['state'] for d in mine]
    assert mine[-1]['progress']['bytes_done'] == mine[-1]['progress']['bytes_total'] > 0
    ids = [i for _, _, i in events]
    assert ids == sorted(ids)
    mine = [d['event'] for e, d, _ in events if e == 'domain' and d['domain'] == domain]
    assert mine[-2:] == ['suspended', 'resumed'], mine
    # The daemon still stops cleanly with a stream that was open (fixture checks exit code).
