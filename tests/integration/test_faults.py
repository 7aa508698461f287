"""Faults underneath the service: QEMU killed under a running domain, a vault that fills up.

A QEMU that dies writes none of its dirty bitmaps into the qcow2 files, so
every checkpoint taken in that run has lost what it counted from: the service
must say so (state `broken`, with the reason) instead of offering them as
bases, and must go on working for the checkpoints that come after.
"""
import os
import subprocess
import time

from conftest import Daemon  # noqa: F401  (the fixtures come from conftest)
from helpers import domain_state


def qemu_pid(dom):
    p = subprocess.run(['pgrep', '-f', f'guest={dom},'], capture_output=True, text=True)
    pids = [int(x) for x in p.stdout.split()]
    assert len(pids) == 1, f'expected one QEMU for {dom}: {pids}'
    return pids[0]


def test_qemu_killed_marks_its_checkpoints_broken(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    for name in ('c1', 'c2'):
        assert c.post(f'/v1/domains/{dom}/checkpoints', json={'name': name}).status == 201
    sandbox.write(dom, 0, 1 << 20, 0x5a)

    subprocess.run(['kill', '-9', str(qemu_pid(dom))], check=True)
    deadline = time.time() + 30
    while domain_state(dom) != 'shut off':
        assert time.time() < deadline, domain_state(dom)
        time.sleep(0.2)

    # The stop event alone has the domain reconciled: no refresh asked for.
    def listed():
        return {i['name']: i for i in c.get(f'/v1/domains/{dom}/checkpoints').json['items']}
    deadline = time.time() + 30
    while any(i['state'] != 'broken' for i in listed().values()):
        assert time.time() < deadline, listed()
        time.sleep(0.2)
    items = listed()
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


def test_qemu_killed_auto_backup_falls_back_to_full(vv_qemu, qemu_domain, sandbox):
    c, dom = vv_qemu.client, qemu_domain
    r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'full'})
    assert r.status == 202, r
    assert c.wait_job(r.json['job_id'])['state'] == 'succeeded'
    full = c.get(f'/v1/domains/{dom}/backups/{r.json["id"]}').json
    sandbox.write(dom, 0, 1 << 20, 0x33)

    subprocess.run(['kill', '-9', str(qemu_pid(dom))], check=True)
    deadline = time.time() + 30
    while domain_state(dom) != 'shut off':
        assert time.time() < deadline, domain_state(dom)
        time.sleep(0.2)
    subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'start', dom], check=True,
                   stdout=subprocess.DEVNULL)

    # The chain's checkpoint lost its bitmap: an incremental is refused with the reason ...
    r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'incremental'})
    assert r.status == 409, r
    assert 'broken' in r.json['detail'] or full['checkpoint'] in r.json['detail'], r.json
    # ... and "auto" takes a full backup instead, which completes.
    r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'auto'})
    assert r.status == 202, r
    assert r.json['type'] == 'full', r.json
    assert c.wait_job(r.json['job_id'])['state'] == 'succeeded'
    b = c.get(f'/v1/domains/{dom}/backups/{r.json["id"]}').json
    assert b['state'] == 'completed' and b['parent_id'] is None, b


def test_vault_that_fills_up(make_daemon, qemu_domain, sandbox, tmp_path):
    """The vault on a 6 MiB tmpfs: a backup of 16 MiB of data fails with a clear reason, the
    catalog claims no file of it, and once there is room the next backup works."""
    vault = tmp_path / 'vault'
    vault.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', str(vault)], check=True)
    d = None
    try:
        d = make_daemon('qemu:///system', workdir=str(tmp_path)).start()
        d.wait_ready()
        c = d.client
        sandbox.write(qemu_domain, 0, 16 << 20, 0xab)
        r = c.post(f'/v1/domains/{qemu_domain}/backups', json={'type': 'full'})
        assert r.status == 202, r
        job = c.wait_job(r.json['job_id'])
        assert job['state'] == 'failed', job
        assert job['error']['code'] == 'insufficient_storage' or 'space' in job['error']['detail'], job
        b = c.get(f'/v1/domains/{qemu_domain}/backups/{r.json["id"]}').json
        assert b['state'] == 'failed' and b['disks'] == [] and b['error'], b
        leftovers = [f for _, _, fs in os.walk(vault) for f in fs if f.startswith(b['id'])]
        assert leftovers == [], leftovers
        assert c.get('/readyz').status == 200

        subprocess.run(['mount', '-o', 'remount,size=256m', str(vault)], check=True)
        r = c.post(f'/v1/domains/{qemu_domain}/backups', json={'type': 'auto'})
        assert r.status == 202, r
        assert r.json['type'] == 'full', r.json
        assert c.wait_job(r.json['job_id'])['state'] == 'succeeded'
        assert c.get(f'/v1/domains/{qemu_domain}/backups/{r.json["id"]}').json['state'] == \
            'completed'
    finally:
        if d:
            d.stop()
        subprocess.run(['umount', str(vault)], check=False)


PIDFILE = '/run/virtvault-sandbox/libvirtd.pid'


def test_libvirtd_killed_during_a_backup(vv_qemu, sandbox):
    """libvirtd goes away while a backup runs and comes back: the job ends in a state that
    tells the truth (succeeded with a backup that verifies, or failed with a reason and no
    files claimed), nothing stays `running`, and the next backup works."""
    import signal
    assert os.path.exists(PIDFILE), 'this test stops the libvirtd that scripts/sandbox started'
    c = vv_qemu.client
    dom = sandbox.unique_name('vvt-fault-')
    sandbox.domain_create(dom, size='1G', start=False)
    try:
        path = subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'domblklist', dom],
                              capture_output=True, text=True, check=True).stdout.split()[1]
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 256M', path],
                       check=True, capture_output=True)
        subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'start', dom], check=True,
                       stdout=subprocess.DEVNULL)
        r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'full', 'bandwidth': 32 << 20})
        assert r.status == 202, r
        b = r.json
        deadline = time.time() + 30
        while c.get(f'/v1/jobs/{b["job_id"]}').json['progress']['bytes_done'] == 0:
            assert time.time() < deadline, 'the backup did not start'
            time.sleep(0.1)

        os.kill(int(open(PIDFILE).read().strip()), signal.SIGTERM)
        try:
            deadline = time.time() + 15
            while c.get('/readyz').status != 503:
                assert time.time() < deadline, 'readyz did not notice'
                time.sleep(0.2)
            time.sleep(2)
        finally:
            subprocess.run([os.path.join(os.path.dirname(__file__), '..', '..', 'scripts',
                                         'sandbox'), 'up'], check=True, stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        while c.get('/readyz').status != 200:
            assert time.time() < deadline, 'the service did not reconnect'
            time.sleep(0.2)

        job = c.wait_job(b['job_id'], timeout=180)
        got = c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json
        if job['state'] == 'succeeded':
            assert got['state'] == 'completed' and got['disks'], got
            r = c.post(f'/v1/domains/{dom}/backups/{b["id"]}/verify')
            assert r.status == 202, r
            assert c.wait_job(r.json['id'])['state'] == 'succeeded'
        else:
            assert job['state'] == 'failed' and job['error'], job
            assert got['state'] == 'failed' and got['disks'] == [] and got['error'], got
            files = [f for _, _, fs in os.walk(vv_qemu.vault_dir) for f in fs
                     if f.startswith(b['id'])]
            assert files == [], files
        r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'auto'})
        assert r.status == 202, r
        assert c.wait_job(r.json['job_id'], timeout=180)['state'] == 'succeeded'
    finally:
        sandbox.domain_remove(dom)
