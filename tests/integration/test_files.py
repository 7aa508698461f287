"""Files inside backup points, read through libguestfs, against real QEMU and real ext4.

One domain, shut off, with three disks: vda holds an ext4 filesystem made with `mkfs.ext4 -d`
(no mount anywhere), vdb an MBR partition table with ext4 in its first partition, vdc
nothing. Three backups (full, incremental, incremental) with files
changed between them: each change is made on a raw copy with debugfs (again no mount), and
the blocks that changed are written into the domain's qcow2 with qemu-io, so the image's
dirty bitmaps see them as a guest's writes. Each point must list and serve what was written
then; `..` and symlinks are the guest filesystem's, never the host's.

An appliance launch costs ~26 s here (TCG): the backups are shared by the whole module, the
tests visit each point once in order, and warm requests are checked by the launches metric,
not by the clock.
"""
import os
import random
import re
import subprocess
import threading
import time

import pytest

from conftest import Daemon, _finish
from helpers import MiB, disk_path, problem

pytestmark = pytest.mark.skipif(
    subprocess.run(['pkg-config', '--exists', 'libguestfs']).returncode != 0,
    reason='libguestfs is not installed')

SIZE = 256 * MiB
CHUNK = 64 * 1024
BIG = random.Random(18).randbytes(300_000)
GUEST_PASSWD = b'root:x:0:0:guest of the backup:/root:/bin/sh\n'

# What each point holds: path -> content (bytes) for files.
POINTS = [
    {'/etc/hostname': b'alpha\n', '/etc/motd': b'hello v1\n', '/data/only-v1.txt': b'one\n'},
    {'/etc/hostname': b'beta\n', '/etc/motd': b'hello v1\n', '/data/new-v2.txt': b'two\n'},
    {'/etc/hostname': b'gamma\n', '/etc/motd': b'hello v3\n', '/data/new-v2.txt': b'two\n'},
]


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def make_source(root):
    for d in ('etc', 'data/sub'):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for path, content in POINTS[0].items():
        with open(root + path, 'wb') as f:
            f.write(content)
    with open(os.path.join(root, 'etc/passwd'), 'wb') as f:
        f.write(GUEST_PASSWD)
    with open(os.path.join(root, 'data/big.bin'), 'wb') as f:
        f.write(BIG)
    with open(os.path.join(root, 'data/sub/deep.txt'), 'wb') as f:
        f.write(b'deep\n')
    os.chmod(os.path.join(root, 'etc/motd'), 0o600)
    # A name that is no UTF-8 (Latin-1): listed with U+FFFD in its place.
    with open(os.path.join(root.encode(), b'data/caf\xe9'), 'wb') as f:
        f.write(b'latin-1\n')
    # Pointing out of the filesystem, as seen from the host: the guest's view must answer.
    os.symlink('/etc/shadow', os.path.join(root, 'data/shadow'))
    os.symlink('/etc/passwd', os.path.join(root, 'data/passwd'))
    os.symlink('../../../../../etc/hostname', os.path.join(root, 'data/up'))


def partitioned(path, tmp):
    """A raw disk with one MBR partition from 1 MiB on, holding ext4 with /hello.txt."""
    src = os.path.join(tmp, 'src-b')
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, 'hello.txt'), 'wb') as f:
        f.write(b'on a partition\n')
    part = os.path.join(tmp, 'part.raw')
    run('mkfs.ext4', '-q', '-F', '-L', 'vvdata', '-d', src, part, f'{SIZE // MiB - 1}M')
    with open(path, 'wb') as f:
        f.truncate(SIZE)
    run('sfdisk', '-q', path, input=b'label: dos\nstart=2048, type=83\n')
    run('dd', f'if={part}', f'of={path}', 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none')


def to_qcow2(raw, image):
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', '-o', 'compat=1.1', raw, image + '.new')
    os.replace(image + '.new', image)


def debugfs(raw, *cmds):
    run('debugfs', '-w', '-f', '-', raw, input='\n'.join(cmds).encode() + b'\n')


def put_file(raw, tmp, path, content):
    src = os.path.join(tmp, 'put')
    with open(src, 'wb') as f:
        f.write(content)
    folder, name = path.rsplit('/', 1)
    debugfs(raw, f'rm {path}', f'cd {folder or "/"}', f'write {src} {name}')


def copy_changes(old_raw, new_raw, image, tmp):
    """Writes the chunks of new_raw that differ from old_raw into the qcow2 image."""
    cmds, n = [], 0
    with open(old_raw, 'rb') as a, open(new_raw, 'rb') as b:
        off = 0
        while True:
            x, y = a.read(CHUNK), b.read(CHUNK)
            if not y:
                break
            if x != y:
                chunk = os.path.join(tmp, f'chunk{n}')
                with open(chunk, 'wb') as f:
                    f.write(y)
                cmds += ['-c', f'write -q -s {chunk} {off} {len(y)}']
                n += 1
            off += len(y)
    assert cmds
    run('qemu-io', '-f', 'qcow2', *cmds, image)


def backup(c, dom, **body):
    r = c.post(f'/v1/domains/{dom}/backups', json=body)
    assert r.status == 202, r
    job = c.wait_job(r.json['job_id'], timeout=300)
    assert job['state'] == 'succeeded', job
    return r.json['id']


def metric(c, name):
    text = c.get('/metrics').text
    m = re.search(rf'^{name} (\d+)$', text, re.M)
    assert m, f'{name} not in /metrics'
    return int(m.group(1))


@pytest.fixture(scope='module')
def files_set(sandbox, tmp_path_factory):
    """The daemon, the domain and its three backup points (ids, oldest first)."""
    tmp = str(tmp_path_factory.mktemp('files'))
    src = os.path.join(tmp, 'src')
    make_source(src)
    vv = Daemon('qemu:///system', args=['--files-max-handles', '2']).start()
    vv.wait_ready()
    try:
        with sandbox.domain(size='256M', disks=3, start=False) as dom:
            c = vv.client
            raw = os.path.join(tmp, 'v1.raw')
            run('mkfs.ext4', '-q', '-F', '-L', 'vvroot', '-d', src, raw, '256M')
            image = disk_path(dom)
            to_qcow2(raw, image)
            partitioned(os.path.join(tmp, 'b.raw'), tmp)
            to_qcow2(os.path.join(tmp, 'b.raw'), disk_path(dom, 'vdb'))
            ids = [backup(c, dom, type='full')]
            prev = raw
            for i in (1, 2):
                cur = os.path.join(tmp, f'v{i + 1}.raw')
                run('cp', '--sparse=always', prev, cur)
                for path, content in POINTS[i].items():
                    if POINTS[i - 1].get(path) != content:
                        put_file(cur, tmp, path, content)
                for path in set(POINTS[i - 1]) - set(POINTS[i]):
                    debugfs(cur, f'rm {path}')
                copy_changes(prev, cur, image, tmp)
                ids.append(backup(c, dom, type='incremental'))
                prev = cur
            for i, bid in enumerate(ids):
                b = c.get(f'/v1/domains/{dom}/backups/{bid}').json
                assert b['type'] == ('full' if i == 0 else 'incremental'), b
            c.timeout = 600  # a cold point waits for its appliance
            yield vv, c, dom, ids
    finally:
        _finish(vv)


def base(dom, bid, disk='vda'):
    return f'/v1/domains/{dom}/backups/{bid}/disks/{disk}'


def listing(c, url, path, **q):
    query = '&'.join([f'path={path}'] + [f'{k}={v}' for k, v in q.items()])
    r = c.get(f'{url}/files?{query}')
    assert r.status == 200, r
    return r.json


def names(doc):
    return sorted(i['name'] for i in doc['items'])


def content(c, url, path, **kw):
    return c.get(f'{url}/files/content?path={path}', **kw)


def check_point(c, url, point):
    """Listing and content of every file of the point equal what was written then."""
    for folder in ('/etc', '/data'):
        want = sorted({p.rsplit('/', 1)[1] for p in point if p.startswith(folder + '/')} |
                      ({'passwd'} if folder == '/etc' else
                       {'big.bin', 'sub', 'shadow', 'passwd', 'up', 'caf\ufffd'}))
        doc = listing(c, url, folder)
        assert doc['path'] == folder and doc['filesystem'] == '/dev/sda', doc
        assert names(doc) == want, doc
        assert doc['next_page_token'] is None
        for item in doc['items']:
            path = f'{folder}/{item["name"]}'
            if path in point:
                assert item['type'] == 'file' and item['size'] == len(point[path]), item
                r = content(c, url, path)
                assert r.status == 200 and r.raw == point[path], (path, r)


def test_first_point_lists_and_serves_what_was_written(files_set):
    vv, c, dom, ids = files_set
    url = base(dom, ids[0])
    launches = metric(c, 'virtvault_files_appliance_launches_total')

    # Two requests on the cold point at once wait for the same launch.
    answers = []

    def ask():
        answers.append(c.get(f'{url}/files?path=/etc'))
    threads = [threading.Thread(target=ask) for _ in range(2)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cold = time.monotonic() - t0
    assert [a.status for a in answers] == [200, 200], answers
    assert answers[0].json == answers[1].json
    assert metric(c, 'virtvault_files_appliance_launches_total') == launches + 1
    assert metric(c, 'virtvault_files_handles_open') == 1

    fs = c.get(f'{url}/filesystems')
    assert fs.status == 200, fs
    assert fs.json['items'] == [{'device': '/dev/sda', 'type': 'ext4', 'label': 'vvroot',
                                 'uuid': fs.json['items'][0]['uuid'], 'size': SIZE}], fs.json
    assert len(fs.json['items'][0]['uuid']) == 36

    check_point(c, url, POINTS[0])
    etc = {i['name']: i for i in listing(c, url, '/etc')['items']}
    assert etc['motd']['mode'] == '0600' and etc['hostname']['mode'] == '0644', etc
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$', etc['motd']['mtime']), etc
    data = {i['name']: i for i in listing(c, url, '/data')['items']}
    assert data['sub']['type'] == 'directory'
    assert data['shadow'] == {**data['shadow'], 'type': 'symlink', 'target': '/etc/shadow'}
    assert 'target' not in data['big.bin']
    assert listing(c, url, '/data/sub', filesystem='/dev/sda')['items'][0]['name'] == 'deep.txt'

    # Every request after the launch reused the handle.
    assert metric(c, 'virtvault_files_appliance_launches_total') == launches + 1
    t0 = time.monotonic()
    listing(c, url, '/etc')
    warm = time.monotonic() - t0
    print(f'files: cold listing (appliance launch) {cold:.1f} s, warm listing {warm * 1000:.0f} ms')


def test_content_ranges_and_disposition(files_set):
    vv, c, dom, ids = files_set
    url = base(dom, ids[0])
    r = content(c, url, '/data/big.bin')
    assert r.status == 200 and r.raw == BIG
    assert r.headers['content-type'] == 'application/octet-stream'
    assert r.headers['content-length'] == str(len(BIG))
    assert r.headers['content-disposition'].startswith('attachment; filename="big.bin"'), r.headers
    r = content(c, url, '/data/big.bin', headers={'Range': 'bytes=1000-1999'})
    assert r.status == 206 and r.raw == BIG[1000:2000], r
    assert r.headers['content-range'] == f'bytes 1000-1999/{len(BIG)}'
    r = content(c, url, '/data/big.bin', headers={'Range': 'bytes=-10'})
    assert r.status == 206 and r.raw == BIG[-10:]
    r = content(c, url, '/data/big.bin', headers={'Range': 'bytes=0-0,299990-'})
    assert r.status == 206 and r.headers['content-type'].startswith('multipart/byteranges')
    assert BIG[:1] in r.raw and BIG[299990:] in r.raw
    problem(content(c, url, '/data/big.bin', headers={'Range': f'bytes={len(BIG)}-'}), 416)


def test_paths_are_resolved_by_the_guest_filesystem(files_set):
    vv, c, dom, ids = files_set
    url = base(dom, ids[0])
    # `..` above the root stays at the root of the filesystem.
    assert listing(c, url, '/../../etc')['path'] == '/etc'
    assert listing(c, url, '/data/sub/..//.')['path'] == '/data'
    # A symlink to /etc/passwd is the guest's file, never the host's.
    r = content(c, url, '/data/passwd')
    assert r.status == 200 and r.raw == GUEST_PASSWD, r
    assert r.headers['content-disposition'].startswith('attachment; filename="passwd"')
    # Climbing out with a relative symlink ends at the guest's root.
    assert content(c, url, '/data/up').raw == b'alpha\n'
    # The guest has no /etc/shadow: 404, whatever the host has.
    problem(content(c, url, '/data/shadow'), 404, 'not_found')
    problem(content(c, url, '/etc/nothing'), 404, 'not_found')
    problem(c.get(f'{url}/files?path=/nothing'), 404, 'not_found')
    # A folder has no bytes; a file is no folder.
    problem(content(c, url, '/etc'), 422)
    problem(c.get(f'{url}/files?path=/etc/hostname'), 422)
    # Bad input names the parameter.
    for q in ('path=etc', 'path=', ''):
        p = problem(c.get(f'{url}/files?{q}'), 400, 'invalid_request')
        assert 'path' in p['detail'], p
        p = problem(c.get(f'{url}/files/content?{q}'), 400, 'invalid_request')
        assert 'path' in p['detail'], p
    p = problem(c.get(f'{url}/files?path=/&filesystem=/dev/sdz9'), 400, 'invalid_request')
    assert 'filesystem' in p['detail'], p
    p = problem(c.get(f'{url}/files?path=/&limit=0'), 400, 'invalid_request')
    assert 'limit' in p['detail'], p
    problem(c.get(f'{base(dom, ids[0], "vdz")}/files?path=/'), 404, 'not_found')
    problem(c.get(f'/v1/domains/{dom}/backups/ffffffffffffffff/disks/vda/files?path=/'), 404)


def test_listing_pages_by_name(files_set):
    vv, c, dom, ids = files_set
    url = base(dom, ids[0])
    seen, token = [], None
    while True:
        q = f'{url}/files?path=/data&limit=2' + (f'&page_token={token}' if token else '')
        r = c.get(q)
        assert r.status == 200, r
        assert len(r.json['items']) <= 2
        seen += [i['name'] for i in r.json['items']]
        token = r.json['next_page_token']
        if not token:
            break
    assert seen == sorted(seen) == names(listing(c, url, '/data'))


def test_second_and_third_points_show_their_own_files(files_set):
    vv, c, dom, ids = files_set
    for i in (1, 2):
        check_point(c, base(dom, ids[i]), POINTS[i])
    # At most --files-max-handles (2) appliances were open at once.
    assert metric(c, 'virtvault_files_handles_open') <= 2


def test_other_disks_of_the_point_share_its_appliance(files_set):
    """vdb's partition and vdc's nothing, read through the handle that vda's request launched."""
    vv, c, dom, ids = files_set
    launches = metric(c, 'virtvault_files_appliance_launches_total')
    url = base(dom, ids[2], 'vdb')
    fs = c.get(f'{url}/filesystems').json['items']
    assert [(f['device'], f['type'], f['label'], f['size']) for f in fs] == [
        ('/dev/sdb1', 'ext4', 'vvdata', SIZE - MiB)], fs
    doc = listing(c, url, '/', filesystem='/dev/sdb1')
    assert doc['filesystem'] == '/dev/sdb1' and 'hello.txt' in names(doc), doc
    assert content(c, url, '/hello.txt').raw == b'on a partition\n'
    # vda's filesystem is not vdb's, and the other way round.
    p = problem(c.get(f'{url}/files?path=/&filesystem=/dev/sda'), 400, 'invalid_request')
    assert 'filesystem' in p['detail'], p
    assert listing(c, base(dom, ids[2]), '/etc')['filesystem'] == '/dev/sda'

    url = base(dom, ids[2], 'vdc')
    assert c.get(f'{url}/filesystems').json == {'items': []}
    p = problem(c.get(f'{url}/files?path=/'), 422, 'unprocessable')
    assert 'no filesystem' in p['detail'], p
    problem(content(c, url, '/x'), 422, 'unprocessable')
    assert metric(c, 'virtvault_files_appliance_launches_total') == launches
