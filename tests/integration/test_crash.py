"""Crash safety: virtvaultd is killed with SIGKILL at random moments while
clients create and delete checkpoints and run backups on a running QEMU
domain, and started again each time. After every restart: the database passes
integrity_check, every change that was answered 2xx is there (and every
acknowledged delete is gone), every backup answered 202 is in the catalog and
ends (completed, failed or cancelled: never left running), a completed one's
files are in the vault with the checksum the catalog records, nothing is
reported in a state it never reached, and libvirt and SQLite agree after the
reconcile.

VV_CRASH_KILLS sets the number of kills (make test: a short run; make soak: a
long one)."""
import os
import random
import sqlite3
import threading
import time

import pytest

from client import ROOT, Client
from conftest import Daemon, _finish
from helpers import checkpoints, file_checksum

KILLS = int(os.environ.get('VV_CRASH_KILLS', '12'))
STATES = {'ok', 'redefined', 'broken', 'orphaned'}


def integrity(db):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute('PRAGMA integrity_check').fetchone()[0]
    finally:
        con.close()


class Clients:
    """Two clients creating and deleting checkpoints and one running backups until stopped;
    they record what was acknowledged. A request cut off by the kill is acknowledged neither
    way."""

    def __init__(self, url, dom, seq):
        self.url, self.dom = url, dom
        self.seq = seq
        self.created, self.deleted = set(), set()
        self.delete_tried = set()  # sent, maybe cut off by the kill: either outcome is right
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.backups_acked = set()
        self.backup_in_flight = None  # the backup running when the daemon was killed
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True)
                        for k in range(2)] + [threading.Thread(target=self.backups, daemon=True)]

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
                time.sleep(rnd.uniform(0, 0.3))  # leave the backups a turn at the domain
            except OSError:
                time.sleep(0.02)  # the daemon is gone or restarting

    def backups(self):
        """Backups one after the other (auto: full, then incrementals), each followed to its
        end or to the kill."""
        c = Client(self.url, validate=False, timeout=10)
        while not self.stop.is_set():
            try:
                r = c.post(f'/v1/domains/{self.dom}/backups', json={'type': 'auto'})
                if r.status != 202:
                    time.sleep(0.02)  # busy with a checkpoint operation: try again
                    continue
                with self.lock:
                    self.backups_acked.add(r.json['id'])
                    self.backup_in_flight = r.json['id']
                while not self.stop.is_set():
                    b = c.get(f'/v1/domains/{self.dom}/backups/{r.json["id"]}').json
                    if b['state'] != 'running':
                        with self.lock:
                            self.backup_in_flight = None
                        break
                    time.sleep(0.1)
            except OSError:
                time.sleep(0.02)

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
    backups, checked, unfinished, cut_off = set(), set(), set(), set()
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
        backups |= clients.backups_acked
        if clients.backup_in_flight:
            cut_off.add(clients.backup_in_flight)
        assert integrity(d.db_path) == 'ok', f'kill {kill}'

        # Restart: backups cut off are resumed or failed, the start-up reconcile runs; then
        # compare.
        d = Daemon('qemu:///system', workdir=crash_dir)
        d.start()
        d.wait_ready()
        c = d.client
        check_backups(c, d, dom, backups, checked, unfinished, kill)
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
        in_libvirt = set(checkpoints(dom))
        assert in_libvirt == {n for n, i in items.items() if i['in_libvirt']}, (
            f'kill {kill}: libvirt {sorted(in_libvirt)} vs catalog {sorted(items)}')
        assert in_libvirt == set(items), f'kill {kill}: {sorted(in_libvirt ^ set(items))}'
        _finish_keep(d)
    # The start-up reconcile holds the domain for a while after each start (creates meanwhile
    # answer 409 domain_busy), so not every run between kills gets a create in.
    assert len(created) >= max(3, KILLS // 3), f'too few acknowledged creates: {created}'
    assert checked, f'no backup completed in {KILLS} runs: {sorted(backups)}'
    os.makedirs(os.path.join(ROOT, 'out', 'test'), exist_ok=True)
    with open(os.path.join(ROOT, 'out', 'test', 'crash.txt'), 'a') as f:
        f.write(f'{time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} {KILLS} kills, '
                f'{len(created)} creates, {len(deleted)} deletes and {len(backups)} backups '
                f'acknowledged ({len(cut_off)} running at a kill; {len(checked)} completed and '
                f'checked, {len(unfinished)} failed), '
                f'{len(delete_tried - deleted)} deletes cut off, none lost\n')


def check_backups(c, d, dom, acked, checked, unfinished, kill):
    """Every backup answered 202 is in the catalog and ends; a completed one is whole."""
    deadline = time.time() + 120
    while True:
        states = {}
        for bid in sorted(acked):
            r = c.get(f'/v1/domains/{dom}/backups/{bid}')
            assert r.status == 200, f'kill {kill}: acknowledged backup {bid} lost: {r}'
            states[bid] = r.json
        running = [bid for bid, b in states.items() if b['state'] == 'running']
        if not running:
            break
        assert time.time() < deadline, f'kill {kill}: backups left running: {running}'
        time.sleep(0.5)
    for bid, b in states.items():
        assert b['state'] in ('completed', 'failed', 'cancelled'), (kill, b)
        if b['state'] != 'completed':
            assert b['error'], (kill, b)  # says why
            unfinished.add(bid)
            continue
        if bid in checked:
            continue
        for disk in b['disks']:
            path = os.path.join(d.vault_dir, disk['file'])
            digest = file_checksum(path, disk['checksum_algorithm'])
            assert digest == disk['sha256'], f'kill {kill}: {path} is not what {bid} records'
        checked.add(bid)


def _finish_keep(d):
    """Stops a daemon cleanly (checking sanitizer reports) but keeps its folder."""
    code = d.stop(timeout=180)  # shutdown waits for a reconcile of every domain in flight
    assert not d.sanitizer_reports, d.sanitizer_reports[0][-4000:]
    assert code == 0, code
