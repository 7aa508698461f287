"""The HTTP data plane's sparse-aware reading, against real QEMU exports: what block status
calls zero is answered without being read from QEMU (the daemon's byte counters in /metrics
say what was read), the extents-first way of reading (extents?context=allocation, then one
multi-range GET of the data ranges, a multipart/byteranges answer) carries exactly the disk's
data, and a whole-disk GET is byte for byte what nbdcopy copies from the same export.
"""
import re
import subprocess
import time

import pytest

from helpers import MiB, keep

SIZE = 64 * MiB
# (offset, length) of what the guest writes; everything else reads as zeros.
WRITTEN = [(0, 5 * MiB), (40 * MiB, MiB + 4096), (SIZE - 256 * 1024, 256 * 1024)]


def pull_ready(c, dom):
    r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'full', 'mode': 'pull'})
    assert r.status == 202, r
    bid = r.json['id']
    for _ in range(600):
        b = c.get(f'/v1/domains/{dom}/backups/{bid}').json
        if b['state'] != 'running':
            break
        time.sleep(0.1)
    assert b['state'] == 'ready', b
    return b


def counters(c):
    """(bytes read from NBD, bytes answered as zeros) of the data plane, from /metrics."""
    text = c.get('/metrics').raw.decode()
    got = dict(re.findall(r'^virtvault_data_plane_bytes_total\{source="(\w+)"\} (\d+)$', text,
                          re.M))
    return int(got['nbd']), int(got['zero'])


def multipart(r):
    """[(first, last, bytes)] of a multipart/byteranges answer."""
    m = re.match(r'multipart/byteranges; boundary=(\S+)$', r.headers['content-type'])
    assert m, r.headers['content-type']
    delim = b'--' + m.group(1).encode()
    parts = []
    body = r.raw
    assert body.startswith(delim + b'\r\n'), body[:100]
    at = 0
    while True:
        at = body.index(delim, at) + len(delim)
        if body[at:at + 2] == b'--':
            break
        head_end = body.index(b'\r\n\r\n', at)
        head = body[at:head_end].decode()
        first, last = map(int, re.search(r'Content-Range: bytes (\d+)-(\d+)/\d+', head).groups())
        data = body[head_end + 4:head_end + 4 + last - first + 1]
        assert len(data) == last - first + 1
        parts.append((first, last, data))
        at = head_end + 4 + len(data)
        assert body[at:at + 2] == b'\r\n', body[at:at + 10]
    return parts


@pytest.fixture
def written_domain(sandbox):
    """A running 64 MiB domain whose guest wrote WRITTEN (random bytes)."""
    with sandbox.domain(size='64M') as name:
        for off, n in WRITTEN:
            sandbox.write(name, off, n, 'random')
        yield name


def test_zeros_are_not_read_and_the_whole_disk_equals_nbdcopys_copy(vv_qemu, written_domain,
                                                                    tmp_path):
    c = vv_qemu.client
    dom = written_domain
    b = pull_ready(c, dom)
    url = f'/v1/domains/{dom}/backups/{b["id"]}/disks/vda/data'
    read0, zero0 = counters(c)
    r = c.get(url)
    assert r.status == 200 and len(r.raw) == SIZE, r
    read1, zero1 = counters(c)
    data = sum(n for _, n in WRITTEN)
    # Only the written ranges were asked of QEMU (QEMU allocates whole 64 KiB clusters).
    assert data <= read1 - read0 <= data + len(WRITTEN) * 64 * 1024, (read1 - read0, data)
    assert zero1 - zero0 >= SIZE - data - len(WRITTEN) * 64 * 1024, zero1 - zero0

    # Byte for byte what nbdcopy copies from the same export, and what the guest sees.
    copied = tmp_path / 'nbdcopy.raw'
    subprocess.run(['nbdcopy', b['disks'][0]['export']['uri'], str(copied)], check=True)
    assert copied.read_bytes() == r.raw
    disk = tmp_path / 'disk.raw'
    keep(dom, SIZE, str(disk))
    assert disk.read_bytes() == r.raw

    # The same once more, as two ranges that each start in zeros and end in data.
    r2 = c.get(url, headers={'Range': f'bytes={3 * MiB}-{41 * MiB - 1},{60 * MiB}-'})
    assert r2.status == 206, r2
    parts = multipart(r2)
    assert [(f, l) for f, l, _ in parts] == [(3 * MiB, 41 * MiB - 1), (60 * MiB, SIZE - 1)]
    for f, l, got in parts:
        assert got == r.raw[f:l + 1], (f, l)
    assert c.post(f'/v1/domains/{dom}/backups/{b["id"]}/finish').status == 200


def test_extents_first_then_data_ranges_only(vv_qemu, written_domain, tmp_path):
    """The documented sparse-aware way to read: the allocation extents, then one GET of
    every data range (multipart/byteranges): exactly the data is read from QEMU and sent,
    and it equals the disk at those ranges; the rest of the disk reads as zeros."""
    c = vv_qemu.client
    dom = written_domain
    b = pull_ready(c, dom)
    base = f'/v1/domains/{dom}/backups/{b["id"]}/disks/vda'
    r = c.get(base + '/extents?context=allocation')
    assert r.status == 200 and r.json['next_offset'] is None, r
    items = r.json['items']
    data = [(e['start'], e['length']) for e in items if e['data']]
    assert all(e['zero'] != e['data'] for e in items), items
    assert 1 <= len(data) <= 16, data
    total = sum(n for _, n in data)
    assert sum(n for _, n in WRITTEN) <= total <= sum(n for _, n in WRITTEN) + 3 * 64 * 1024

    read0, _ = counters(c)
    r = c.get(base + '/data',
              headers={'Range': 'bytes=' + ','.join(f'{s}-{s + n - 1}' for s, n in data)})
    assert r.status == 206, r
    read1, _ = counters(c)
    assert read1 - read0 == total, (read1 - read0, total)
    if len(data) > 1:
        parts = multipart(r)
    else:
        parts = [(data[0][0], data[0][0] + data[0][1] - 1, r.raw)]
    assert [(f, l - f + 1) for f, l, _ in parts] == data

    disk = tmp_path / 'disk.raw'
    keep(dom, SIZE, str(disk))
    raw = disk.read_bytes()
    rebuilt = bytearray(SIZE)
    for f, l, got in parts:
        assert got == raw[f:l + 1], (f, l)
        rebuilt[f:l + 1] = got
    assert bytes(rebuilt) == raw
    assert c.post(f'/v1/domains/{dom}/backups/{b["id"]}/finish').status == 200
