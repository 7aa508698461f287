"""Restores and extents of huge sparse disks: what they cost and hold follows the data.

A 100 GiB disk holding a few MiB restores into files that take a few MiB and hold the same
bytes as the backup (`qemu-img compare` against the vault's chain); the extents of a 200 GiB
disk page from start to end with every data range where the guest wrote it.
"""
import os
import subprocess
import time

import pytest

from helpers import MiB

GiB = 1 << 30


def post_backup(c, dom, **body):
    r = c.post(f'/v1/domains/{dom}/backups', json=body)
    assert r.status == 202, r
    return r.json


def backup(c, dom, **body):
    b = post_backup(c, dom, **body)
    job = c.wait_job(b['job_id'])
    assert job['state'] == 'succeeded', job
    b = c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json
    assert b['state'] == 'completed', b
    return b


def restore(c, dom, backup_id, target_dir, fmt):
    r = c.post(f'/v1/domains/{dom}/backups/{backup_id}/restore',
               json={'target_dir': target_dir, 'format': fmt})
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    return job['result']['disks'][0]['path']


def allocated(path):
    return os.stat(path).st_blocks * 512


@pytest.fixture
def big_domain(sandbox):
    """A running sandbox domain whose 100 GiB disk is sparse."""
    with sandbox.domain(size='100G') as name:
        yield name


def test_big_sparse_disk_restores_sparse_and_exact(vv_qemu, big_domain, sandbox):
    c = vv_qemu.client
    dom = big_domain
    sandbox.write(dom, 0, 4 * MiB, 0xa1)
    sandbox.write(dom, 60 * GiB, 4 * MiB, 'random')
    sandbox.write(dom, 100 * GiB - MiB, MiB, 0xc3)
    full = backup(c, dom, type='full')
    assert full['disk_size'] == 100 * GiB
    sandbox.write(dom, 30 * GiB + 64 * 1024, 2 * MiB, 'random')
    sandbox.write(dom, 60 * GiB, MiB, 0xd4)
    inc = backup(c, dom, type='incremental')
    assert inc['parent_id'] == full['id']
    top = os.path.join(vv_qemu.vault_dir, inc['disks'][0]['file'])
    root = os.path.join(vv_qemu.vault_dir, 'restore')

    for fmt in ('raw', 'qcow2'):
        path = restore(c, dom, inc['id'], os.path.join(root, fmt), fmt)
        # The whole disk, yet only what the guest wrote takes room.
        info = subprocess.run(['qemu-img', 'info', '-f', fmt, path], check=True,
                              capture_output=True, text=True).stdout
        assert '107374182400 bytes' in info, info
        assert allocated(path) < 32 * MiB, (fmt, allocated(path))
        p = subprocess.run(['qemu-img', 'compare', '-f', 'qcow2', '-F', fmt, top, path],
                           capture_output=True, text=True)
        assert p.returncode == 0, f'{path} differs from {top}: {p.stdout}{p.stderr}'
        # And, for raw, byte for byte against the guest at the places written.
        if fmt == 'raw':
            with open(path, 'rb') as f:
                for off, n in ((0, 4 * MiB), (30 * GiB, 4 * MiB), (60 * GiB, 4 * MiB),
                               (100 * GiB - MiB, MiB)):
                    f.seek(off)
                    assert f.read(n) == sandbox.read(dom, off, n), (fmt, off)


def page_all(c, path, context, limit):
    """Every page of the extents: the items, each page's start, and the pages' count."""
    offset, items, pages = 0, [], 0
    while offset is not None:
        r = c.get(f'{path}/extents?context={context}&offset={offset}&limit={limit}')
        assert r.status == 200, r
        page = r.json
        assert page['offset'] == offset and len(page['items']) <= limit, page
        assert page['items'] and page['items'][0]['start'] == offset, page
        items += page['items']
        offset = page['next_offset']
        pages += 1
        assert pages < 1000
    return items, pages


def wait_ready(c, dom, bid, timeout=120):
    deadline = time.time() + timeout
    while True:
        b = c.get(f'/v1/domains/{dom}/backups/{bid}').json
        if b['state'] != 'running':
            return b
        assert time.time() < deadline, b
        time.sleep(0.1)


def test_extents_of_a_200_gib_disk_page_from_start_to_end(vv_qemu, sandbox):
    c = vv_qemu.client
    with sandbox.domain(size='200G') as dom:
        sandbox.write(dom, 0, MiB, 0x11)
        backup(c, dom, type='full')
        written = [(7 * GiB, MiB), (100 * GiB, 2 * MiB), (150 * GiB + 64 * 1024, 64 * 1024),
                   (200 * GiB - MiB, MiB)]
        for i, (off, n) in enumerate(written):
            sandbox.write(dom, off, n, 0x20 + i)
        b = post_backup(c, dom, type='incremental', mode='pull')
        b = wait_ready(c, dom, b['id'])
        assert b['state'] == 'ready', b
        path = f'/v1/domains/{dom}/backups/{b["id"]}/disks/vda'
        try:
            for context in ('dirty', 'allocation'):
                whole, pages = page_all(c, path, context, 1000)
                # The pages tile the disk, start to end.
                at = 0
                for e in whole:
                    assert e['start'] == at and e['length'] > 0, (context, e)
                    at += e['length']
                assert at == 200 * GiB, context
                key = 'dirty' if context == 'dirty' else 'data'
                marked = [(e['start'], e['length']) for e in whole if e[key]]
                want = written if context == 'dirty' else [(0, MiB)] + written
                assert marked == want, (context, marked)
                # One extent a page, then two: the same extents, in as many pages.
                for limit in (1, 2):
                    items, n = page_all(c, path, context, limit)
                    assert items == whole, (context, limit)
                    assert n == -(-len(whole) // limit), (context, limit, n)
        finally:
            assert c.post(f'/v1/domains/{dom}/backups/{b["id"]}/finish').status == 200
