"""Crash safety: virtvaultd is killed with SIGKILL at random moments while
clients create and delete checkpoints on a running QEMU domain, and started
again each time. After every restart: the database passes integrity_check,
every change that was answered 2xx is there (and every acknowledged delete is
gone), nothing is reported in a state it never reached, and libvirt and
SQLite agree after the start-up reconcile.

VV_CRASH_KILLS sets the number of kills (make test: a short run; make soak: a
long one)."""
import os
import random
import sqlite3
import subprocess
import threading
import time

import pytest

from client import ROOT, Client
from conftest import Daemon, _finish

KILLS = int(os.environ.get('VV_CRASH_KILLS', '12'))
STATES = {'ok', 'redefined', 'broken', 'orphaned'}


def virsh_checkpoints(dom):
    p = subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'checkpoint-list', dom, '--name'],
                       capture_output=True, text=True, check=True)
    return set(p.stdout.split())


def integrity(db):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute('PRAGMA integrity_check').fetchone()[0]
    finally:
        con.close()


class Clients:
    """Two clients creating and deleting checkpoints until stopped; they record what was
    acknowledged. A request cut off by the kill is acknowledged neither way."""

    def __init__(self, url, dom, seq):
        self.url, self.dom = url, dom
        self.seq = seq
        self.created, self.deleted = set(), set()
        self.delete_tried = set()  # sent, maybe cut off by the kill: either outcome is right
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in range(2)]

    def run(self, k):
        c = Client(self.url, validate=False, timeout=10)
        rnd = random.Random()
        while not self.stop.is_set():
            try:
                with self.lock:
                    live = sorted(self.created - self.deleted)
                if live and rnd.random() < 0.35:
                    name = rnd.choice(live)
                    with self.lock:
                        self.delete_tried.add(name)
                    r = c.delete(f'/v1/domains/{self.dom}/checkpoints/{name}')
                    if r.status in (200, 204):
                        with self.lock:
                            self.deleted.add(name)
                else:
                    with self.lock:
                        self.seq[0] += 1
                        name = f'k{self.seq[0]}-{k}'
                    r = c.post(f'/v1/domains/{self.dom}/checkpoints', json={'name': name})
                    if r.status == 201:
                        with self.lock:
                            self.created.add(name)
            except OSError:
                time.sleep(0.02)  # the daemon is gone or restarting

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)


@pytest.fixture
def crash_dir(tmp_path):
    return str(tmp_path)


def test_sigkill_loses_nothing_acknowledged(sandbox, qemu_domain, crash_dir):
    dom = qemu_domain
    seq = [0]
    created, deleted, delete_tried = set(), set(), set()
    d = None
    rnd = random.Random()
    for kill in range(KILLS):
        d = Daemon('qemu:///system', workdir=crash_dir)
        d.start()
        d.wait_ready()
        clients = Clients(d.url, dom, seq)
        clients.start()
        time.sleep(rnd.uniform(0.3, 2.5))
        d.kill()
        clients.join()
        created |= clients.created
        deleted |= clients.deleted
        delete_tried |= clients.delete_tried
        assert integrity(d.db_path) == 'ok', f'kill {kill}'

        # Restart: the start-up reconcile runs; then compare.
        d = Daemon('qemu:///system', workdir=crash_dir)
        d.start()
        d.wait_ready()
        c = d.client
        r = c.post(f'/v1/domains/{dom}/checkpoints:reconcile')
        assert r.status == 200, r
        items = {i['name']: i for i in c.get(f'/v1/domains/{dom}/checkpoints').json['items']}
        missing = (created - delete_tried) - set(items)
        assert not missing, f'kill {kill}: acknowledged creates lost: {sorted(missing)}'
        back = deleted & set(items)
        assert not back, f'kill {kill}: acknowledged deletes came back: {sorted(back)}'
        for name, i in items.items():
            assert i['state'] in STATES, i
            # A delete cut off between libvirt and the catalog leaves a row whose bitmap is
            # gone: it must be reported broken, never ok. Acknowledged ones stay ok.
            if name in created and name not in delete_tried:
                assert i['state'] != 'broken', (
                    f'kill {kill}: an acknowledged checkpoint was reported broken: {i}')
        in_libvirt = virsh_checkpoints(dom)
        assert in_libvirt == {n for n, i in items.items() if i['in_libvirt']}, (
            f'kill {kill}: libvirt {sorted(in_libvirt)} vs catalog {sorted(items)}')
        assert in_libvirt == set(items), f'kill {kill}: {sorted(in_libvirt ^ set(items))}'
        _finish_keep(d)
    # The start-up reconcile holds the domain for a while after each start (creates meanwhile
    # answer 409 domain_busy), so not every run between kills gets a create in.
    assert len(created) >= max(3, KILLS // 3), f'too few acknowledged creates: {created}'
    os.makedirs(os.path.join(ROOT, 'out', 'test'), exist_ok=True)
    with open(os.path.join(ROOT, 'out', 'test', 'crash.txt'), 'a') as f:
        f.write(f'{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} {KILLS} kills, '
                f'{len(created)} creates and {len(deleted)} deletes acknowledged, '
                f'{len(delete_tried - deleted)} deletes cut off, none lost\n')


def _finish_keep(d):
    """Stops a daemon cleanly (checking sanitizer reports) but keeps its folder."""
    code = d.stop(timeout=180)  # shutdown waits for a reconcile of every domain in flight
    assert not d.sanitizer_reports, d.sanitizer_reports[0][-4000:]
    assert code == 0, code
