"""Pull-mode backups against real QEMU domains: NBD exports and the HTTP data plane over
them, finish / abandon / the idle timeout, pulls into the vault, and backups of stopped
domains.

Guest writes go through the guest's own device (scripts/sandbox write), so dirty bitmaps see
them. What a test compares against is read from the disk itself (scripts/sandbox read).
"""
import concurrent.futures
import contextlib
import os
import random
import re
import subprocess
import time

import pytest

from helpers import MiB, checkpoints, disk_path, keep, libvirt_reads_of, same_disk, virsh


# ------------------------------------------------------------------------------------------
# helpers

def start(c, dom, expect=202, **body):
    r = c.post(f'/v1/domains/{dom}/backups', json=body)
    assert r.status == expect, r
    return r.json


def wait_state(c, dom, bid, states, timeout=60):
    deadline = time.time() + timeout
    while True:
        b = c.get(f'/v1/domains/{dom}/backups/{bid}').json
        if b['state'] in states:
            return b
        assert time.time() < deadline, f'backup {bid} still {b["state"]}: {b}'
        time.sleep(0.1)


def pull_ready(c, dom, **body):
    """Begins a pull backup read by a client and waits until its exports are served."""
    b = start(c, dom, mode='pull', **body)
    assert b['mode'] == 'pull' and b['state'] == 'running'
    assert all(d['export'] and d['file'] is None for d in b['disks']), b
    b = wait_state(c, dom, b['id'], ('ready', 'failed', 'cancelled'))
    assert b['state'] == 'ready', b
    return b


def backup(c, dom, **body):
    b = start(c, dom, **body)
    job = c.wait_job(b['job_id'])
    assert job['state'] == 'succeeded', job
    b = c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json
    assert b['state'] == 'completed', b
    return b


def restore(c, dom, bid, target_dir):
    r = c.post(f'/v1/domains/{dom}/backups/{bid}/restore',
               json={'target_dir': target_dir, 'format': 'raw'})
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    return job['result']['disks'][0]['path']


def extents(c, dom, bid, context, disk='vda'):
    r = c.get(f'/v1/domains/{dom}/backups/{bid}/disks/{disk}/extents?context={context}')
    assert r.status == 200, r
    assert r.json['context'] == context
    items = r.json['items']
    # They cover the export, in order, without gaps.
    pos = 0
    for e in items:
        assert e['start'] == pos, items
        pos += e['length']
    assert pos == r.json['size'], items
    return items


def get_range(c, dom, bid, start_, length, disk='vda'):
    r = c.get(f'/v1/domains/{dom}/backups/{bid}/disks/{disk}/data',
              headers={'Range': f'bytes={start_}-{start_ + length - 1}'})
    assert r.status == 206, r
    assert r.headers['content-range'] == f'bytes {start_}-{start_ + length - 1}/{r.headers["content-range"].split("/")[1]}'
    assert len(r.raw) == length
    return r.raw


def nbdinfo_map(uri, context):
    """[(start, length, type)] as `nbdinfo --map` prints it."""
    out = subprocess.run(['nbdinfo', f'--map={context}', uri], check=True, capture_output=True,
                         text=True).stdout
    rows = []
    for line in out.splitlines():
        start_, length, kind = line.split()[:3]
        rows.append((int(start_), int(length), int(kind)))
    return rows


def merged(rows):
    """Adjacent rows of the same type joined (nbdinfo prints what the server sends)."""
    out = []
    for s, n, k in rows:
        if out and out[-1][2] == k and out[-1][0] + out[-1][1] == s:
            out[-1] = (out[-1][0], out[-1][1] + n, k)
        else:
            out.append((s, n, k))
    return out


def job_of(c, b):
    return c.get(f'/v1/jobs/{b["job_id"]}').json


@pytest.fixture
def domain(sandbox):
    """A running 64 MiB sandbox domain."""
    with sandbox.domain(size='64M') as name:
        yield name


# ------------------------------------------------------------------------------------------
# tests

def test_incremental_pull_lists_and_serves_exactly_what_was_written(vv_qemu, domain, sandbox):
    c = vv_qemu.client
    full = backup(c, domain, type='full')
    rng = random.Random(6)
    places = [(3 * MiB, MiB), (20 * MiB + 512 * 1024, MiB), (50 * MiB, MiB)]
    written = {}
    for off, n in places:
        data = bytes(rng.getrandbits(8) for _ in range(4096)) * (n // 4096)
        sandbox.write(domain, off, n, data)
        written[off] = data

    b = pull_ready(c, domain, type='incremental')
    assert b['type'] == 'incremental' and b['base_checkpoint'] == full['checkpoint']
    ex = b['disks'][0]['export']
    assert ex['name'] == 'vda' and ex['size'] == 64 * MiB
    assert ex['dirty_context'] == 'qemu:dirty-bitmap:backup-vda'
    assert ex['uri'] == f'nbd+unix:///vda?socket={ex["socket"]}'
    assert os.path.dirname(ex['socket']).startswith(vv_qemu.vault_dir)

    # The dirty extents are exactly the three places.
    items = extents(c, domain, b['id'], 'dirty')
    dirty = [(e['start'], e['length']) for e in items if e['dirty']]
    assert dirty == places, items
    assert all(set(e) == {'start', 'length', 'dirty'} for e in items)

    # nbdinfo on the published URI agrees, clean ranges included.
    rows = merged(nbdinfo_map(ex['uri'], ex['dirty_context']))
    assert rows == [(e['start'], e['length'], int(e['dirty'])) for e in items], rows

    # The data of those ranges is exactly what was written.
    for off, n in places:
        assert get_range(c, domain, b['id'], off, n) == written[off]
    # Several ranges in one request come as multipart/byteranges.
    r = c.get(f'/v1/domains/{domain}/backups/{b["id"]}/disks/vda/data',
              headers={'Range': 'bytes=%d-%d,%d-%d' % (places[0][0], places[0][0] + 9,
                                                       places[2][0], places[2][0] + 9)})
    assert r.status == 206 and r.content_type.startswith('multipart/byteranges'), r
    assert written[places[0][0]][:10] in r.raw and written[places[2][0]][:10] in r.raw

    # The allocation context has the other shape.
    alloc = extents(c, domain, b['id'], 'allocation')
    assert all(set(e) == {'start', 'length', 'zero', 'data'} for e in alloc)
    assert any(e['data'] and e['start'] <= places[1][0] < e['start'] + e['length'] for e in alloc)

    # Finish keeps the checkpoint: the next incremental counts from it.
    r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/finish')
    assert r.status == 200 and r.json['state'] == 'completed', r
    assert r.json['stored_bytes'] == 0 and r.json['disks'][0]['export'] is None
    assert job_of(c, b)['state'] == 'succeeded'
    assert b['checkpoint'] in checkpoints(domain)
    assert c.get(f'/v1/domains/{domain}/checkpoints/{b["checkpoint"]}').json['state'] == 'ok'
    assert not os.path.exists(ex['socket'])
    r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/finish')
    assert r.status == 409, r

    sandbox.write(domain, 8 * MiB, MiB, 0x77)
    b2 = pull_ready(c, domain, type='incremental')
    assert b2['base_checkpoint'] == b['checkpoint']
    items = extents(c, domain, b2['id'], 'dirty')
    assert [(e['start'], e['length']) for e in items if e['dirty']] == [(8 * MiB, MiB)]
    assert get_range(c, domain, b2['id'], 8 * MiB, 16) == b'\x77' * 16
    r = c.post(f'/v1/domains/{domain}/backups/{b2["id"]}/finish')
    assert r.status == 200, r

    # A client pull stored nothing: it cannot be restored, and vault chains skip it.
    r = c.post(f'/v1/domains/{domain}/backups/{b2["id"]}/restore',
               json={'target_dir': os.path.join(vv_qemu.vault_dir, 'restore')})
    assert r.status == 409 and 'pull' in r.json['detail'], r
    inc = backup(c, domain, type='incremental')
    assert inc['parent_id'] == full['id'] and inc['base_checkpoint'] == full['checkpoint']


def test_full_pull_through_data_in_parallel_ranges_equals_the_disk(vv_qemu, domain, sandbox,
                                                                  tmp_path):
    c = vv_qemu.client
    size = 64 * MiB
    sandbox.write(domain, 0, 5 * MiB, 'random')
    sandbox.write(domain, 33 * MiB, 3 * MiB + 4096, 'random')
    sandbox.write(domain, size - MiB, MiB, 0xee)
    b = pull_ready(c, domain, type='full')
    assert b['disks'][0]['export']['dirty_context'] is None
    # A full has no dirty bitmap.
    r = c.get(f'/v1/domains/{domain}/backups/{b["id"]}/disks/vda/extents?context=dirty')
    assert r.status == 400 and 'full' in r.json['detail'], r

    parts = 6
    step = size // parts + 1
    ranges = [(s, min(step, size - s)) for s in range(0, size, step)]
    with concurrent.futures.ThreadPoolExecutor(parts) as pool:
        chunks = list(pool.map(lambda rg: get_range(c, domain, b['id'], *rg), ranges))
    pulled = tmp_path / 'pulled.raw'
    pulled.write_bytes(b''.join(chunks))
    # Without a Range header: the whole disk.
    r = c.get(f'/v1/domains/{domain}/backups/{b["id"]}/disks/vda/data')
    assert r.status == 200 and len(r.raw) == size, r
    (tmp_path / 'whole.raw').write_bytes(r.raw)
    # Beyond the end: 416.
    r = c.get(f'/v1/domains/{domain}/backups/{b["id"]}/disks/vda/data',
              headers={'Range': f'bytes={size}-'})
    assert r.status == 416 and r.headers['content-range'] == f'bytes */{size}', r
    r = c.get(f'/v1/domains/{domain}/backups/{b["id"]}/disks/vdz/data')
    assert r.status == 404, r

    disk = tmp_path / 'disk.raw'
    keep(domain, size, str(disk))
    subprocess.run(['cmp', str(pulled), str(disk)], check=True)
    subprocess.run(['cmp', str(tmp_path / 'whole.raw'), str(disk)], check=True)
    assert c.post(f'/v1/domains/{domain}/backups/{b["id"]}/finish').status == 200


def test_abandon_removes_the_checkpoint_and_the_next_incremental_is_correct(vv_qemu, domain,
                                                                          sandbox):
    c = vv_qemu.client
    full = backup(c, domain, type='full')
    sandbox.write(domain, 2 * MiB, MiB, 0x21)
    b = pull_ready(c, domain, type='incremental')
    assert b['checkpoint'] in checkpoints(domain)
    sock = b['disks'][0]['export']['socket']

    r = c.delete(f'/v1/jobs/{b["job_id"]}')
    assert r.status in (200, 202), r
    job = c.wait_job(b['job_id'])
    assert job['state'] == 'cancelled', job
    b = c.get(f'/v1/domains/{domain}/backups/{b["id"]}').json
    assert b['state'] == 'cancelled' and 'abandoned' in b['error']['detail'], b
    assert b['checkpoint'] not in checkpoints(domain)
    assert c.get(f'/v1/domains/{domain}/checkpoints/{b["checkpoint"]}').status == 404
    assert not os.path.exists(sock)
    r = c.get(f'/v1/domains/{domain}/backups/{b["id"]}/disks/vda/extents')
    assert r.status == 409, r

    # The change read by the abandoned pull is counted again by the next one.
    sandbox.write(domain, 30 * MiB, MiB, 0x22)
    b2 = pull_ready(c, domain, type='incremental')
    assert b2['base_checkpoint'] == full['checkpoint']
    dirty = [(e['start'], e['length']) for e in extents(c, domain, b2['id'], 'dirty')
             if e['dirty']]
    assert dirty == [(2 * MiB, MiB), (30 * MiB, MiB)], dirty
    assert c.post(f'/v1/domains/{domain}/backups/{b2["id"]}/finish').status == 200


def test_ready_pulls_leave_the_job_workers_to_other_jobs(vv_qemu, sandbox):
    """More pull backups wait for their readers than the service has job workers (4):
    backups of other domains still run and complete meanwhile."""
    c = vv_qemu.client
    with contextlib.ExitStack() as stack:
        doms = [stack.enter_context(sandbox.domain(size='16M')) for _ in range(6)]
        pulls = [pull_ready(c, dom, type='full') for dom in doms[:5]]
        r = c.post(f'/v1/domains/{doms[5]}/backups', json={'type': 'full'})
        assert r.status == 202, r
        job = c.wait_job(r.json['job_id'], timeout=60)
        assert job['state'] == 'succeeded', job
        for dom, b in zip(doms, pulls):
            assert c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json['state'] == 'ready'
            get_range(c, dom, b['id'], 0, 4096)
            assert c.post(f'/v1/domains/{dom}/backups/{b["id"]}/finish').status == 200
            assert wait_state(c, dom, b['id'], ('completed', 'failed'))['state'] == 'completed'


def test_a_forgotten_export_ends_after_the_idle_timeout(sandbox, make_daemon):
    vv = make_daemon('qemu:///system', args=['--pull-idle-timeout', '3']).start()
    vv.wait_ready()
    c = vv.client
    with sandbox.domain(size='16M') as dom:
        b = pull_ready(c, dom, type='full')
        sock = b['disks'][0]['export']['socket']
        # Reads keep it alive past the timeout...
        for _ in range(5):
            get_range(c, dom, b['id'], 0, 4096)
            time.sleep(1)
        assert c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json['state'] == 'ready'
        # ...and without them it ends.
        t0 = time.time()
        b = wait_state(c, dom, b['id'], ('failed', 'cancelled', 'completed'), timeout=30)
        assert 2 <= time.time() - t0 < 15
        assert b['state'] == 'failed' and 'idle timeout' in b['error']['detail'], b
        assert job_of(c, b)['state'] == 'failed'
        assert b['checkpoint'] not in checkpoints(dom)
        assert not os.path.exists(sock)
        assert 'Job type:         None' in virsh('domjobinfo', dom).stdout or \
            'None' in virsh('domjobinfo', dom).stdout


def test_pull_into_the_vault_restores_like_push(vv_qemu, domain, sandbox, tmp_path):
    c = vv_qemu.client
    size = 64 * MiB
    restore_root = os.path.join(vv_qemu.vault_dir, 'restore')
    sandbox.write(domain, 0, 6 * MiB, 'random')
    keep(domain, size, str(tmp_path / 'a.raw'))
    full = backup(c, domain, type='full', mode='pull', target='vault')
    assert full['mode'] == 'pull' and full['disks'][0]['file'] and full['disks'][0]['sha256']
    assert 6 * MiB <= full['stored_bytes'] < 7 * MiB, full
    assert full['checkpoint'] in checkpoints(domain)

    sandbox.write(domain, 4 * MiB, 4 * MiB, 'random')
    sandbox.write(domain, 40 * MiB, MiB, 0x5c)
    keep(domain, size, str(tmp_path / 'b.raw'))
    inc = backup(c, domain, type='incremental', mode='pull', target='vault')
    assert inc['parent_id'] == full['id'] and inc['base_checkpoint'] == full['checkpoint']
    assert 5 * MiB <= inc['stored_bytes'] < 6 * MiB, inc
    assert not os.listdir(os.path.join(vv_qemu.vault_dir, 'pull'))

    # A push incremental goes on from it.
    sandbox.write(domain, 60 * MiB, MiB, 0x5d)
    keep(domain, size, str(tmp_path / 'c.raw'))
    push = backup(c, domain, type='incremental')
    assert push['parent_id'] == inc['id']

    for b, raw in ((full, 'a.raw'), (inc, 'b.raw'), (push, 'c.raw')):
        path = restore(c, domain, b['id'], restore_root)
        same_disk(path, str(tmp_path / raw))
        os.unlink(path)
    r = c.post(f'/v1/domains/{domain}/backups/{push["id"]}/verify')
    job = c.wait_job(r.json['id'])
    assert job['result']['ok'] is True, job


def test_stopped_domain_full_then_incremental(vv_qemu, sandbox, tmp_path):
    c = vv_qemu.client
    size = 32 * MiB
    restore_root = os.path.join(vv_qemu.vault_dir, 'restore')
    with sandbox.domain(size='32M', start=False) as dom:
        img = disk_path(dom)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x31 0 3M', img], check=True,
                       capture_output=True)
        d = c.get(f'/v1/domains/{dom}').json
        assert d['state'] == 'shutoff'
        assert d['supports']['push_backup']['supported'] is True, d['supports']
        assert d['supports']['pull_backup']['supported'] is False
        assert 'not running' in d['supports']['pull_backup']['reason']
        # Exports for a client need a running domain.
        r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'full', 'mode': 'pull'})
        assert r.status == 409 and 'not running' in r.json['detail'], r

        keep(dom, size, str(tmp_path / 'a.raw'))
        full = backup(c, dom, type='full')
        assert 3 * MiB <= full['stored_bytes'] < 4 * MiB, full
        assert full['checkpoint'] in checkpoints(dom)
        assert c.get(f'/v1/domains/{dom}/checkpoints/{full["checkpoint"]}').json['state'] == 'ok'
        bitmaps = subprocess.run(['qemu-img', 'info', '-U', img], capture_output=True,
                                 text=True).stdout
        assert full['checkpoint'] in bitmaps

        # Written while stopped (qemu-io updates the image's bitmaps as QEMU would).
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x32 1M 1M',
                        '-c', 'write -P 0x33 20M 2M', img], check=True, capture_output=True)
        keep(dom, size, str(tmp_path / 'b.raw'))
        inc = backup(c, dom, type='incremental', mode='pull', target='vault')
        assert inc['base_checkpoint'] == full['checkpoint'] and inc['parent_id'] == full['id']
        assert 3 * MiB <= inc['stored_bytes'] < 4 * MiB, inc
        cps = virsh('checkpoint-list', dom, '--parent').stdout
        assert re.search(rf'{inc["checkpoint"]}\s.*{full["checkpoint"]}', cps), cps

        # Running again, libvirt goes on from the checkpoint made while it was stopped.
        virsh('start', dom)
        sandbox.write(dom, 10 * MiB, MiB, 0x34)
        keep(dom, size, str(tmp_path / 'c.raw'))
        live = backup(c, dom, type='incremental')
        assert live['base_checkpoint'] == inc['checkpoint']
        assert MiB <= live['stored_bytes'] < 2 * MiB, live

        # Stopped or running, a create looks the domain up once and reads its XML once.
        for b in (full, inc, live):
            assert libvirt_reads_of(vv_qemu, b['id']) == (1, 1), b['id']

        for b, raw in ((full, 'a.raw'), (inc, 'b.raw'), (live, 'c.raw')):
            path = restore(c, dom, b['id'], restore_root)
            same_disk(path, str(tmp_path / raw))
            os.unlink(path)

        # Without the base bitmap in the image, an incremental is refused with the reason.
        virsh('destroy', dom)
        subprocess.run(['qemu-img', 'bitmap', '--remove', img, live['checkpoint']], check=True)
        r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'incremental'})
        assert r.status == 409 and 'bitmap' in r.json['detail'], r


def test_extents_are_paged_and_reads_probe_in_windows(vv_qemu, sandbox):
    """A disk of many small extents (every other 64 KiB cluster written): each answer holds at
    most `limit` extents, paging from `next_offset` reaches the end with what one big page
    holds, and a read across more extents than one block-status probe holds is still right."""
    c = vv_qemu.client
    n, stride, size = 4200, 128 * 1024, 576 * MiB
    with sandbox.domain(size='576M', start=False) as dom:
        cmds = []
        for i in range(n):
            cmds += ['-c', f'write -q -P {0x20 + i % 64} {i * stride} 64k']
        subprocess.run(['qemu-io', '-f', 'qcow2', *cmds, disk_path(dom)], check=True,
                       capture_output=True)
        virsh('start', dom)
        b = pull_ready(c, dom, type='full')
        base = f'/v1/domains/{dom}/backups/{b["id"]}/disks/vda/extents?context=allocation'

        r = c.get(base + '&limit=10000')
        assert r.status == 200 and r.json['next_offset'] is None and r.json['offset'] == 0, r
        whole = r.json['items']
        assert len(whole) >= 2 * n, len(whole)
        assert sum(e['length'] for e in whole if e['data']) == n * 64 * 1024

        paged, offset, pages = [], 0, 0
        while offset is not None:
            r = c.get(base + f'&limit=500&offset={offset}')
            assert r.status == 200, r
            assert len(r.json['items']) <= 500 and r.json['offset'] == offset, r.json['offset']
            assert r.json['items'][0]['start'] == offset
            paged += r.json['items']
            offset = r.json['next_offset']
            pages += 1
            assert pages <= len(whole) // 500 + 2
        assert paged == whole

        # A window: length bounds the answer too; the default limit holds 1000.
        r = c.get(base + f'&offset={stride}&length={10 * stride}')
        assert r.status == 200 and r.json['next_offset'] is None, r
        assert sum(e['length'] for e in r.json['items']) == 10 * stride, r.json
        r = c.get(base)
        assert len(r.json['items']) == 1000 and r.json['next_offset'] == whole[999]['start'] + \
            whole[999]['length'], r.json['next_offset']
        for bad in ('limit=0', 'limit=10001', 'offset=-1', f'offset={size + 1}', 'length=0',
                    'limit=x'):
            r = c.get(base + '&' + bad)
            assert r.status == 400 and r.json['code'] == 'invalid_request', (bad, r)

        # One read over all of it: more extents than one probe holds, every byte right.
        r = c.get(f'/v1/domains/{dom}/backups/{b["id"]}/disks/vda/data')
        assert r.status == 200 and len(r.raw) == size, r
        for i in range(n):
            at = i * stride
            assert r.raw[at:at + 64 * 1024] == bytes([0x20 + i % 64]) * (64 * 1024), i
            assert r.raw[at + 64 * 1024:at + stride].count(0) == 64 * 1024, i
        assert r.raw[n * stride:].count(0) == size - n * stride
        assert c.post(f'/v1/domains/{dom}/backups/{b["id"]}/finish').status == 200


def test_bad_pull_requests(vv_qemu, domain):
    c = vv_qemu.client
    for body, what in [({'mode': 'pool'}, 'mode'), ({'mode': 'pull', 'target': 'tape'}, 'target'),
                       ({'target': 'client'}, 'target'),
                       ({'mode': 'pull', 'bandwidth': 1000}, 'bandwidth')]:
        r = c.post(f'/v1/domains/{domain}/backups', json=body)
        assert r.status == 400 and what in r.json['detail'], (body, r)
    full = backup(c, domain, type='full')
    for path in ('extents', 'data'):
        r = c.get(f'/v1/domains/{domain}/backups/{full["id"]}/disks/vda/{path}')
        assert r.status == 409 and 'push' in r.json['detail'], r
    r = c.post(f'/v1/domains/{domain}/backups/{full["id"]}/finish')
    assert r.status == 409, r
    r = c.get(f'/v1/domains/{domain}/backups/nope/disks/vda/extents')
    assert r.status == 404, r
    b = pull_ready(c, domain, type='full')
    r = c.get(f'/v1/domains/{domain}/backups/{b["id"]}/disks/vda/extents?context=bitmap')
    assert r.status == 400, r
    # One job per domain: the ready pull holds it.
    r = c.post(f'/v1/domains/{domain}/backups', json={'type': 'full'})
    assert r.status == 409 and r.json['code'] == 'domain_busy', r
    assert c.post(f'/v1/domains/{domain}/backups/{b["id"]}/finish').status == 200
