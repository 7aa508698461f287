"""Faults underneath the service: QEMU killed under a running domain.

A QEMU that dies writes none of its dirty bitmaps into the qcow2 files, so
every checkpoint taken in that run has lost what it counted from: the service
must say so (state `broken`, with the reason) instead of offering them as
bases, and must go on working for the checkpoints that come after.
"""
import subprocess
import time

from conftest import Daemon  # noqa: F401  (the fixtures come from conftest)


def qemu_pid(dom):
    p = subprocess.run(['pgrep', '-f', f'guest={dom},'], capture_output=True, text=True)
    pids = [int(x) for x in p.stdout.split()]
    assert len(pids) == 1, f'expected one QEMU for {dom}: {pids}'
    return pids[0]


def domstate(dom):
    return subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'domstate', dom],
                          capture_output=True, text=True).stdout.strip()


def test_qemu_killed_marks_its_checkpoints_broken(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    for name in ('c1', 'c2'):
        assert c.post(f'/v1/domains/{dom}/checkpoints', json={'name': name}).status == 201
    sandbox.write(dom, 0, 1 << 20, 0x5a)

    subprocess.run(['kill', '-9', str(qemu_pid(dom))], check=True)
    deadline = time.time() + 30
    while domstate(dom) != 'shut off':
        assert time.time() < deadline, domstate(dom)
        time.sleep(0.2)

    items = {i['name']: i for i in c.get(f'/v1/domains/{dom}/checkpoints').json['items']}
    assert set(items) == {'c1', 'c2'}
    for i in items.values():
        assert i['state'] == 'broken', i
        assert 'missing' in i['reason'], i

    # Started again: still broken (the bitmaps did not come back), and new work goes on.
    subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'start', dom], check=True,
                   stdout=subprocess.DEVNULL)
    r = c.post(f'/v1/domains/{dom}/checkpoints:reconcile')
    assert r.status == 200, r
    items = {i['name']: i for i in c.get(f'/v1/domains/{dom}/checkpoints').json['items']}
    assert items['c1']['state'] == 'broken' and items['c2']['state'] == 'broken', items
    r = c.post(f'/v1/domains/{dom}/checkpoints', json={'name': 'c3'})
    assert r.status == 201, r
    assert r.json['state'] == 'ok', r.json
    # A broken checkpoint can be deleted; the good one stays.
    r = c.delete(f'/v1/domains/{dom}/checkpoints/c1')
    assert r.status in (200, 204), r
    names = {i['name']: i['state'] for i in c.get(f'/v1/domains/{dom}/checkpoints').json['items']}
    assert names == {'c2': 'broken', 'c3': 'ok'}, names
    # The service itself noticed nothing wrong with its own health.
    assert c.get('/readyz').status == 200
