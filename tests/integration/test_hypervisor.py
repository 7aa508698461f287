"""The foundation against the sandbox's real libvirtd and QEMU domains."""
import os
import signal
import subprocess
import time

from client import ROOT
from helpers import wait_for

PIDFILE = '/run/virtvault-sandbox/libvirtd.pid'


def test_domains_on_qemu(vv_qemu, sandbox):
    name = sandbox.unique_name()
    sandbox.domain_create(name, size='32M', disks=2)
    try:
        c = vv_qemu.client
        names = [d['name'] for d in c.get('/v1/domains').json['items']]
        assert name in names
        d = c.get(f'/v1/domains/{name}').json
        assert d['state'] == 'running' and d['persistent'] is True
        assert [k['target'] for k in d['disks']] == ['vda', 'vdb']
        assert all(k['format'] == 'qcow2' and k['source'].endswith('.qcow2') for k in d['disks'])
        s = d['supports']
        assert s['push_backup']['supported'] and s['pull_backup']['supported'], s
        assert s['checkpoints']['supported'] and s['incremental']['supported'], s
        v = c.get('/v1/version').json['libvirt']
        assert v['driver'] == 'QEMU' and v['hypervisor'].startswith('7.')
    finally:
        sandbox.domain_remove(name)


def test_stopped_domain_says_why_not(vv_qemu, sandbox):
    name = sandbox.unique_name()
    sandbox.domain_create(name, size='16M', start=False)
    try:
        d = vv_qemu.client.get(f'/v1/domains/{name}').json
        assert d['state'] == 'shutoff'
        assert d['supports']['checkpoints']['supported'] is False
        assert 'not running' in d['supports']['checkpoints']['reason']
    finally:
        sandbox.domain_remove(name)


def test_libvirtd_killed_and_back(vv_qemu, sandbox):
    """readyz turns 503 within seconds, calls answer 503 at once, all recovers by itself."""
    assert os.path.exists(PIDFILE), ('this test stops the libvirtd that scripts/sandbox started; '
                                     'none was started by it on this host')
    c = vv_qemu.client
    assert c.get('/readyz').status == 200
    pid = int(open(PIDFILE).read().strip())
    os.kill(pid, signal.SIGTERM)
    try:
        t_kill = time.time()
        t_down = wait_for('readyz 503', lambda: c.get('/readyz').status == 503 and time.time(),
                          10, 0.1)
        assert t_down - t_kill < 10
        r = c.get('/readyz')
        assert r.json['checks'] == {'libvirt': False, 'database': True}
        t0 = time.time()
        r = c.get('/v1/domains')
        assert r.status == 503 and r.json['code'] == 'hypervisor_unavailable', r
        assert time.time() - t0 < 2, 'a request without libvirt must not hang'
        assert c.get('/healthz').status == 200
        assert 'virtvault_libvirt_connected 0' in c.get('/metrics').text
    finally:
        subprocess.run([os.path.join(ROOT, 'scripts', 'sandbox'), 'up'], check=True,
                       stdout=subprocess.DEVNULL)
    wait_for('readyz 200 again', lambda: c.get('/readyz').status == 200, 30, 0.1)
    assert c.get('/v1/domains').status == 200
    assert vv_qemu.proc.poll() is None, 'the daemon was not restarted'
