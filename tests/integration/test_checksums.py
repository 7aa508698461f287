"""Checksums of backup images against real QEMU: what the catalog records equals what this test
computes from the final file on its own (helpers.file_checksum, the README's definition), for
push backups hashed while QEMU copies, incrementals, pull backups into the vault and prune
merges; a byte changed in a data cluster or in a metadata cluster makes verify fail and name
the piece that holds it.
"""
import os
import re
import struct
import subprocess

import pytest

from helpers import MiB, PIECE, disk_path, file_checksum, fill_disk, piece_digests, virsh

ALG = 'sha256-pieces-8MiB'


def backup(c, dom, **body):
    r = c.post(f'/v1/domains/{dom}/backups', json=body)
    assert r.status == 202, r
    job = c.wait_job(r.json['job_id'], timeout=300)
    assert job['state'] == 'succeeded', job
    b = c.get(f'/v1/domains/{dom}/backups/{r.json["id"]}').json
    assert b['state'] == 'completed', b
    return b


def verify(c, dom, backup_id):
    r = c.post(f'/v1/domains/{dom}/backups/{backup_id}/verify')
    assert r.status == 202, r
    job = c.wait_job(r.json['id'], timeout=300)
    assert job['state'] == 'succeeded', job
    return job['result']


def recorded_right(vv, b):
    """Every disk of b records the checksum computed here from its final file."""
    for d in b['disks']:
        path = os.path.join(vv.vault_dir, d['file'])
        assert d['checksum_algorithm'] == ALG, d
        assert d['sha256'] == file_checksum(path, ALG), (b['id'], d)


def qcow2_host_offset(path, guest):
    """The host offset of the data cluster holding guest offset guest, and the host offset of
    the L2 table that maps it (read from the image's own header and tables)."""
    with open(path, 'rb') as f:
        hdr = f.read(104)
        cluster_bits = struct.unpack('>I', hdr[20:24])[0]
        l1_offset = struct.unpack('>Q', hdr[40:48])[0]
        cs = 1 << cluster_bits
        per_l2 = cs // 8
        idx = guest >> cluster_bits
        f.seek(l1_offset + 8 * (idx // per_l2))
        l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
        assert l2, 'no L2 table'
        f.seek(l2 + 8 * (idx % per_l2))
        data = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
        assert data, 'no data cluster'
        return data + guest % cs, l2


def flip(path, offset):
    with open(path, 'r+b') as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xff]))


def piece_named(problems, n):
    return re.search(rf'piece {n} \(bytes {n * PIECE}-{(n + 1) * PIECE - 1}\) differs', problems)


@pytest.fixture
def filled(sandbox, tmp_path):
    """A running domain with a 1 GiB disk: 160 MiB of random data from 0, 24 MiB of a
    pattern at 600 MiB (a second L2 table, given out in the middle of a backup image)."""
    with sandbox.domain(size='1G', start=False) as name:
        fill_disk(name, 1024 * MiB, 160 * MiB, str(tmp_path))
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x33 600M 24M',
                        disk_path(name)], check=True, capture_output=True)
        virsh('start', name)
        yield name


def test_push_records_what_the_file_holds_and_verify_names_the_piece(vv_qemu, filled, sandbox):
    c = vv_qemu.client
    # Throttled, so that the copy takes a while and the follower hashes pieces meanwhile.
    full = backup(c, filled, type='full', bandwidth=64 * MiB)
    recorded_right(vv_qemu, full)
    path = os.path.join(vv_qemu.vault_dir, full['disks'][0]['file'])
    n = len(piece_digests(path))
    assert n >= 20, n
    early = [int(m) for m in re.findall(
        rf'backup {full["id"]} disk vda: (\d+) bytes hashed while QEMU copied', vv_qemu.log())]
    assert early and early[0] >= 8 * PIECE, early  # most pieces were hashed during the copy

    # The incremental over it, with guest writes while nothing runs: hashed the same way.
    sandbox.write(filled, 300 * MiB, 16 * MiB, 'random')
    sandbox.write(filled, 8 * MiB, 4 * MiB, 0x44)
    inc = backup(c, filled, type='incremental')
    recorded_right(vv_qemu, inc)
    res = verify(c, filled, inc['id'])
    assert res['ok'] is True and res['files'] == 2, res

    # A byte of a data cluster (guest offset 100 MiB) and a byte of the L2 table that maps
    # 600 MiB (a metadata cluster past piece 0): verify names both pieces.
    data_at, _ = qcow2_host_offset(path, 100 * MiB)
    _, l2_at = qcow2_host_offset(path, 600 * MiB)
    assert l2_at >= PIECE, l2_at
    flip(path, data_at)
    res = verify(c, filled, full['id'])
    assert res['ok'] is False and 'checksum mismatch' in res['problems'], res
    assert piece_named(res['problems'], data_at // PIECE), (data_at, res['problems'])
    flip(path, data_at)
    assert verify(c, filled, full['id'])['ok'] is True

    flip(path, l2_at + 8 * ((600 * MiB >> 16) % 8192))
    res = verify(c, filled, full['id'])
    assert res['ok'] is False, res
    assert piece_named(res['problems'], l2_at // PIECE), (l2_at, res['problems'])
    # The incremental stands on it: its verification finds the same piece.
    res = verify(c, filled, inc['id'])
    assert res['ok'] is False and piece_named(res['problems'], l2_at // PIECE), res


def test_a_guest_writing_during_the_backup_leaves_a_true_checksum(vv_qemu, filled, sandbox):
    """Copy-before-write during the job: clusters the guest overwrites are copied out of
    order, into places the follower may have passed already."""
    c = vv_qemu.client
    r = c.post(f'/v1/domains/{filled}/backups', json={'type': 'full', 'bandwidth': 48 * MiB})
    assert r.status == 202, r
    for off in (150, 20, 600, 90, 5):
        sandbox.write(filled, off * MiB, 2 * MiB, 'random')
    job = c.wait_job(r.json['job_id'], timeout=300)
    assert job['state'] == 'succeeded', job
    b = c.get(f'/v1/domains/{filled}/backups/{r.json["id"]}').json
    recorded_right(vv_qemu, b)
    assert verify(c, filled, b['id'])['ok'] is True


def test_pull_into_the_vault_and_prune_merges_record_piece_checksums(vv_qemu, filled, sandbox):
    c = vv_qemu.client
    full = backup(c, filled, type='full', mode='pull', target='vault')
    recorded_right(vv_qemu, full)
    sandbox.write(filled, 40 * MiB, 8 * MiB, 'random')
    inc = backup(c, filled, type='incremental', mode='pull', target='vault')
    recorded_right(vv_qemu, inc)

    # Pruning the full merges the incremental into a full image: a new checksum, hashed whole.
    r = c.post(f'/v1/domains/{filled}/backups:prune',
               json={'retention': {'keep_last': 1}, 'dry_run': False})
    assert r.status == 202, r
    job = c.wait_job(r.json['id'], timeout=300)
    assert job['state'] == 'succeeded', job
    merged = c.get(f'/v1/domains/{filled}/backups/{inc["id"]}').json
    assert merged['type'] == 'full' and merged['disks'][0]['backing'] is None, merged
    recorded_right(vv_qemu, merged)
    assert verify(c, filled, inc['id'])['ok'] is True
