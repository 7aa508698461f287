"""Prune with forever-incremental merge, and protected backups, against real QEMU domains.

A full backup and incrementals are taken with distinct patterns written through the guest's
own device between them; each point in time is kept aside as a raw copy. After a prune every
kept backup must restore byte-identical to its copy, the vault must hold exactly the files
the catalog names (no .part, no orphan), and the next `auto` backup must be an incremental on
the kept chain.

The SIGKILL test kills virtvaultd at random moments of prunes; VV_PRUNE_KILLS sets how many
(make test: 12; make soak: 100)."""
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import time

import pytest

from client import ROOT
from conftest import Daemon, _finish
from helpers import MiB, backup, file_checksum, keep, problem, same_disk

CLI = os.environ.get('VIRTVAULT_CLI', os.path.join(ROOT, 'build', 'cli', 'virtvault'))

KILLS = int(os.environ.get('VV_PRUNE_KILLS', '12'))
SIZE = 128 * MiB


@pytest.fixture
def domain(sandbox):
    """A running 128 MiB sandbox domain."""
    with sandbox.domain(size='128M') as name:
        yield name


def restore_matches(c, vv, dom, backup_id, expected, tag):
    target = os.path.join(vv.vault_dir, 'restore', f'{tag}-{backup_id}')
    r = c.post(f'/v1/domains/{dom}/backups/{backup_id}/restore',
               json={'target_dir': target, 'format': 'qcow2'})
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    path = job['result']['disks'][0]['path']
    same_disk(path, expected)
    os.unlink(path)


def verify_ok(c, dom, backup_id):
    r = c.post(f'/v1/domains/{dom}/backups/{backup_id}/verify')
    assert r.status == 202, r
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    assert job['result']['ok'] is True, job['result']


def prune(c, dom, dry_run=False, **retention):
    return c.post(f'/v1/domains/{dom}/backups:prune',
                  json={'retention': retention, 'dry_run': dry_run})


def catalog(c, dom):
    r = c.get(f'/v1/domains/{dom}/backups?state=completed')
    assert r.status == 200, r
    return r.json['items']


def vault_images(vv):
    """Every file below the vault's domain folders (not restore/ or pull/), relative."""
    found = set()
    for root, dirs, files in os.walk(vv.vault_dir):
        rel = os.path.relpath(root, vv.vault_dir)
        if rel.split(os.sep)[0] in ('restore', 'pull'):
            continue
        for f in files:
            found.add(os.path.normpath(os.path.join(rel, f)))
    return found


def vault_bytes(vv):
    total = 0
    for f in vault_images(vv):
        total += os.stat(os.path.join(vv.vault_dir, f)).st_blocks * 512
    return total


def check_vault(vv, items):
    """The vault holds exactly the catalog's images, each with its recorded checksum."""
    named = {}
    for b in items:
        for d in b['disks']:
            named[os.path.normpath(d['file'])] = (d['sha256'], d['checksum_algorithm'])
    files = vault_images(vv)
    assert files == set(named), f'vault {sorted(files)} != catalog {sorted(named)}'
    for f, (sha, algorithm) in named.items():
        assert file_checksum(os.path.join(vv.vault_dir, f), algorithm) == sha, f


def take(c, sandbox, dom, tmp_path, n, **body):
    """Writes pattern n at its own place, keeps the disk aside and backs it up."""
    sandbox.write(dom, (n % 12) * 8 * MiB, 4 * MiB, 0x11 * (n % 15 + 1))
    ref = str(tmp_path / f'p{n}.raw')
    keep(dom, SIZE, ref)
    b = backup(c, dom, **body)
    return b, ref


def test_prune_merges_the_chain_and_keeps_every_kept_point(vv_qemu, domain, sandbox, tmp_path):
    c = vv_qemu.client
    full, ref_f = take(c, sandbox, domain, tmp_path, 0, type='full')
    # The full holds more than the others: removing it must be worth it.
    sandbox.write(domain, 64 * MiB, 24 * MiB, 'random')
    chain = [(full, ref_f)]
    for n in range(1, 5):
        chain.append(take(c, sandbox, domain, tmp_path, n, type='incremental'))
    ids = [b['id'] for b, _ in chain]
    assert [b['parent_id'] for b, _ in chain[1:]] == ids[:-1]
    before = vault_bytes(vv_qemu)

    # The dry run tells and changes nothing.
    r = prune(c, domain, dry_run=True, keep_last=2)
    assert r.status == 200, r
    plan = r.json
    assert plan['keep'] == [ids[4], ids[3]]
    assert plan['remove'] == [ids[2], ids[1], ids[0]]
    assert plan['merge'] == [{'into': ids[3], 'from': ids[:3]}]
    assert plan['bytes_freed_estimate'] > 0
    assert vault_bytes(vv_qemu) == before
    assert len(catalog(c, domain)) == 5

    # The real run is a job.
    r = prune(c, domain, keep_last=2)
    assert r.status == 202, r
    assert r.headers['location'] == f'/v1/jobs/{r.json["id"]}'
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    assert job['kind'] == 'prune'
    res = job['result']
    assert res['keep'] == plan['keep'] and res['remove'] == plan['remove']
    assert res['merge'] == plan['merge']
    after = vault_bytes(vv_qemu)
    assert after < before, (before, after)
    assert res['bytes_freed'] > 0

    items = catalog(c, domain)
    assert [b['id'] for b in items] == [ids[4], ids[3]]
    i3 = c.get(f'/v1/domains/{domain}/backups/{ids[3]}').json
    i4 = c.get(f'/v1/domains/{domain}/backups/{ids[4]}').json
    assert i3['parent_id'] is None and i3['type'] == 'full'
    assert i3['disks'][0]['backing'] is None
    assert i3['disks'][0]['sha256'] != chain[3][0]['disks'][0]['sha256']
    assert i3['checkpoint'] == chain[3][0]['checkpoint']
    assert i4['parent_id'] == ids[3] and i4['chain_id'] == i3['chain_id']
    assert i4['disks'][0]['sha256'] == chain[4][0]['disks'][0]['sha256']
    check_vault(vv_qemu, items)

    # Each kept point restores exactly; verify passes on the merged one and its dependent.
    restore_matches(c, vv_qemu, domain, ids[3], chain[3][1], 'k')
    restore_matches(c, vv_qemu, domain, ids[4], chain[4][1], 'k')
    verify_ok(c, domain, ids[3])
    verify_ok(c, domain, ids[4])

    # The next auto backup is an incremental on the kept chain.
    nxt, ref_n = take(c, sandbox, domain, tmp_path, 5)
    assert nxt['type'] == 'incremental', nxt
    assert nxt['parent_id'] == ids[4] and nxt['chain_id'] == i4['chain_id']
    restore_matches(c, vv_qemu, domain, nxt['id'], ref_n, 'n')


def test_prune_of_a_shared_parent_merges_each_kept_child(vv_qemu, domain, sandbox, tmp_path):
    """A full that an incremental and a differential both stand on goes: each is merged."""
    c = vv_qemu.client
    full, _ = take(c, sandbox, domain, tmp_path, 0, type='full')
    inc, ref_i = take(c, sandbox, domain, tmp_path, 1, type='incremental')
    diff, ref_d = take(c, sandbox, domain, tmp_path, 2, type='differential')
    assert inc['parent_id'] == full['id'] and diff['parent_id'] == full['id'], diff
    r = prune(c, domain, keep_last=2)
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    assert job['result']['remove'] == [full['id']]
    assert sorted(m['into'] for m in job['result']['merge']) == sorted([inc['id'], diff['id']])
    items = catalog(c, domain)
    assert sorted(b['id'] for b in items) == sorted([inc['id'], diff['id']])
    assert all(b['parent_id'] is None and b['type'] == 'full' for b in items), items
    check_vault(vv_qemu, items)
    restore_matches(c, vv_qemu, domain, inc['id'], ref_i, 's')
    restore_matches(c, vv_qemu, domain, diff['id'], ref_d, 's')
    nxt, ref_n = take(c, sandbox, domain, tmp_path, 3)
    assert nxt['type'] == 'incremental' and nxt['parent_id'] == diff['id'], nxt
    restore_matches(c, vv_qemu, domain, nxt['id'], ref_n, 's')


def test_a_cancelled_prune_changes_nothing(vv_qemu, domain, sandbox, tmp_path):
    c = vv_qemu.client
    take(c, sandbox, domain, tmp_path, 0, type='full')
    sandbox.write(domain, 64 * MiB, 32 * MiB, 'random')
    for n in range(1, 3):
        take(c, sandbox, domain, tmp_path, n, type='incremental')
    before = catalog(c, domain)
    r = prune(c, domain, keep_last=1)
    assert r.status == 202, r
    cancel = c.delete(f'/v1/jobs/{r.json["id"]}')
    job = c.wait_job(r.json['id'])
    print(f'cancel answered {cancel.status}; the prune ended {job["state"]}')
    if cancel.status == 409:  # it had ended already: nothing left to cancel
        assert job['state'] == 'succeeded', job
        return
    assert cancel.status in (200, 202), cancel
    if job['state'] == 'succeeded':
        return  # the cancel came after the catalog switched: a prune only goes forward then
    assert job['state'] == 'cancelled', job
    items = catalog(c, domain)
    assert items == before
    check_vault(vv_qemu, items)
    assert intents_left(vv_qemu.db_path) == 0


def test_protected_backups_and_bad_requests(vv_qemu, domain, sandbox, tmp_path):
    c = vv_qemu.client
    full, ref_f = take(c, sandbox, domain, tmp_path, 0, type='full')
    i1, _ = take(c, sandbox, domain, tmp_path, 1, type='incremental')
    i2, ref_2 = take(c, sandbox, domain, tmp_path, 2, type='incremental')
    url = f'/v1/domains/{domain}/backups'
    assert full['protected'] is False

    # PATCH takes exactly {"protected": bool}.
    for body, field in [({'protected': 'yes'}, '/protected'), ({}, '/protected'),
                        ({'protected': True, 'note': 'x'}, '/note')]:
        r = c.request('PATCH', f'{url}/{full["id"]}', json_body=body)
        p = problem(r, 400, 'invalid_request')
        assert p.get('pointer') == field or field.strip('/') in p['detail'], p
    problem(c.request('PATCH', f'{url}/nope', json_body={'protected': True}), 404)
    r = c.request('PATCH', f'{url}/{full["id"]}', json_body={'protected': True})
    assert r.status == 200 and r.json['protected'] is True, r

    # A protected backup is not deleted, alone or with its chain.
    p = problem(c.delete(f'{url}/{full["id"]}'), 409, 'conflict')
    assert 'protected' in p['detail']
    p = problem(c.delete(f'{url}/{i2["id"]}?chain=true'), 409, 'conflict')
    assert 'protected' in p['detail']

    # A prune and a backup of one domain never run at once.
    r = c.post(url, json={'type': 'incremental'})
    assert r.status == 202, r
    problem(prune(c, domain, keep_last=1), 409, 'domain_busy')
    job = c.wait_job(r.json['job_id'])
    assert job['state'] == 'succeeded', job
    r = c.delete(f'{url}/{r.json["id"]}')
    assert r.status == 200, r

    # Bad prune requests change nothing.
    for body in [{}, {'retention': {}}, {'retention': {'keep_lastt': 1}},
                 {'retention': {'keep_last': -1}}, {'retention': {'keep_last': 1}, 'dry_run': 1},
                 {'retention': {'keep_last': 1}, 'extra': True}]:
        problem(c.post(f'{url}:prune', json=body), 400, 'invalid_request')
    problem(prune(c, 'no-such-domain', keep_last=1), 404)

    # keep_last 1 passes over the protected full: it keeps it and I2, which now stands on it.
    r = prune(c, domain, dry_run=True, keep_last=1)
    assert r.status == 200, r
    assert r.json['keep'] == [i2['id'], full['id']] and r.json['remove'] == [i1['id']]
    assert r.json['merge'] == [{'into': i2['id'], 'from': [i1['id']]}]
    r = prune(c, domain, keep_last=1)
    job = c.wait_job(r.json['id'])
    assert job['state'] == 'succeeded', job
    items = catalog(c, domain)
    assert [b['id'] for b in items] == [i2['id'], full['id']]
    m = c.get(f'{url}/{i2["id"]}').json
    assert m['parent_id'] == full['id'] and m['type'] == 'incremental'
    assert m['base_checkpoint'] == full['checkpoint']
    assert m['disks'][0]['backing'] == os.path.basename(full['disks'][0]['file'])
    check_vault(vv_qemu, items)
    restore_matches(c, vv_qemu, domain, i2['id'], ref_2, 'p')
    restore_matches(c, vv_qemu, domain, full['id'], ref_f, 'p')
    verify_ok(c, domain, i2['id'])

    # Unprotected (through the client), it can go with its chain.
    cli = subprocess.run([CLI, '--url', vv_qemu.url, '-o', 'json', 'backups', 'unprotect', domain,
                          full['id']], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)['protected'] is False
    cli = subprocess.run([CLI, '--url', vv_qemu.url, '-o', 'json', '--body',
                          '{"retention": {"keep_last": 1}, "dry_run": true}', 'backups', 'prune',
                          domain], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)['remove'] == [full['id']]
    r = c.delete(f'{url}/{i2["id"]}?chain=true')
    assert r.status == 200 and sorted(r.json['deleted']) == sorted([i2['id'], full['id']]), r
    assert vault_images(vv_qemu) == set()


def intents_left(db_path):
    con = sqlite3.connect(db_path, timeout=10)
    try:
        return con.execute('SELECT count(*) FROM prune_intents').fetchone()[0]
    finally:
        con.close()


def test_prune_killed_at_random_moments_loses_nothing(sandbox, domain, tmp_path):
    """SIGKILL during prunes: after each restart every kept backup restores, no orphan."""
    d = Daemon('qemu:///system').start()
    try:
        d.wait_ready()
        c = d.client
        rnd = random.Random()
        refs = {}
        b, ref = take(c, sandbox, domain, tmp_path, 0, type='full')
        refs[b['id']] = ref
        sandbox.write(domain, 64 * MiB, 16 * MiB, 'random')
        n = 1
        # One prune to the end: the kills below fall anywhere within about as long.
        for _ in range(2):
            b, ref = take(c, sandbox, domain, tmp_path, n)
            refs[b['id']] = ref
            n += 1
        t0 = time.monotonic()
        r = prune(c, domain, keep_last=2)
        assert r.status == 202, r
        job = c.wait_job(r.json['id'])
        took = time.monotonic() - t0
        assert job['state'] == 'succeeded' and job['result']['merge'], job
        for kill in range(KILLS):
            for _ in range(2):
                b, ref = take(c, sandbox, domain, tmp_path, n)
                assert b['type'] == 'incremental', b
                refs[b['id']] = ref
                n += 1
            r = prune(c, domain, keep_last=2)
            assert r.status == 202, r
            time.sleep(rnd.uniform(0, took * 1.2))
            d.kill()
            d.start()
            d.wait_ready()
            c = d.client
            assert intents_left(d.db_path) == 0, d.log()
            items = catalog(c, domain)
            assert 2 <= len(items), items
            check_vault(d, items)
            for it in items:
                restore_matches(c, d, domain, it['id'], refs[it['id']], f'x{kill}')
        log = d.log()
        print(f'prune kills: {KILLS}; undone at start: {log.count("undone after a restart")}, '
              f'finished at start: {log.count("finished after a restart")}')
        # Whatever the kills left, a prune now ends it and the next auto backup continues.
        r = prune(c, domain, keep_last=2)
        job = c.wait_job(r.json['id'])
        assert job['state'] == 'succeeded', job
        items = catalog(c, domain)
        assert len(items) == 2
        check_vault(d, items)
        b, ref = take(c, sandbox, domain, tmp_path, n)
        assert b['type'] == 'incremental' and b['parent_id'] == items[0]['id'], b
        restore_matches(c, d, domain, b['id'], ref, 'end')
    finally:
        _finish(d)


def sql(db_path, *stmts):
    con = sqlite3.connect(db_path, timeout=10)
    try:
        with con:
            for st, args in stmts:
                con.execute(st, args)
    finally:
        con.close()


def test_start_finishes_a_committed_prune_and_undoes_a_prepared_one(sandbox, domain, tmp_path):
    """The state a prune killed before and after its commit leaves, made by hand as the job
    makes it: a restart undoes the first (its .part goes, the catalog stays) and finishes the
    second (the merged image takes its name, the removed images go)."""
    d = Daemon('qemu:///system').start()
    try:
        d.wait_ready()
        c = d.client
        full, _ = take(c, sandbox, domain, tmp_path, 0, type='full')
        i1, ref_1 = take(c, sandbox, domain, tmp_path, 1, type='incremental')
        i2, ref_2 = take(c, sandbox, domain, tmp_path, 2, type='incremental')
        f_file, i1_file, i2_file = (b['disks'][0]['file'] for b in (full, i1, i2))
        vault = d.vault_dir
        now = int(time.time() * 1000)

        # Killed while it wrote: a prepared intent and half an image.
        d.kill()
        with open(os.path.join(vault, i2_file + '.part'), 'wb') as f:
            f.write(b'QFI\xfb' + b'\0' * 4096)
        sql(d.db_path,
            ("INSERT INTO prune_intents VALUES ('p1', ?, 'prepared', ?)",
             (full['domain_uuid'], now)),
            ("INSERT INTO prune_intent_files VALUES ('p1', 0, 'write', ?, ?)",
             (i2_file + '.part', i2_file)),
            ("INSERT INTO prune_intent_files VALUES ('p1', 1, 'remove', ?, NULL)", (f_file,)),
            ("INSERT INTO prune_intent_files VALUES ('p1', 2, 'remove', ?, NULL)", (i1_file,)))
        d.start()
        d.wait_ready()
        assert intents_left(d.db_path) == 0
        items = catalog(d.client, domain)
        assert [b['id'] for b in items] == [i2['id'], i1['id'], full['id']]
        check_vault(d, items)

        # Killed after the commit: the catalog switched, the files not yet.
        d.kill()
        part = os.path.join(vault, i2_file + '.part')
        subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'qcow2',
                        os.path.join(vault, i2_file), part], check=True)
        with open(part, 'rb') as f:
            sha = hashlib.file_digest(f, 'sha256').hexdigest()
        stored = os.stat(part).st_blocks * 512
        sql(d.db_path,
            ("INSERT INTO prune_intents VALUES ('c1', ?, 'committed', ?)",
             (full['domain_uuid'], now)),
            ("INSERT INTO prune_intent_files VALUES ('c1', 0, 'write', ?, ?)",
             (i2_file + '.part', i2_file)),
            ("INSERT INTO prune_intent_files VALUES ('c1', 1, 'remove', ?, NULL)", (f_file,)),
            ("INSERT INTO prune_intent_files VALUES ('c1', 2, 'remove', ?, NULL)", (i1_file,)),
            ("UPDATE backups SET type = 'full', parent_id = NULL, base_checkpoint = NULL, "
             "stored_bytes = ? WHERE id = ?", (stored, i2['id'])),
            # A whole-file SHA-256, as rows before piece digests hold: still verified.
            ("UPDATE backup_disks SET backing = NULL, sha256 = ?, stored_bytes = ?, "
             "checksum_algorithm = 'sha256', piece_digests = NULL "
             "WHERE backup_id = ?", (sha, stored, i2['id'])),
            ("DELETE FROM backups WHERE id IN (?, ?)", (full['id'], i1['id'])))
        d.start()
        d.wait_ready()
        c = d.client
        assert intents_left(d.db_path) == 0
        items = catalog(c, domain)
        assert [b['id'] for b in items] == [i2['id']]
        check_vault(d, items)
        restore_matches(c, d, domain, i2['id'], ref_2, 'r')
        verify_ok(c, domain, i2['id'])
    finally:
        _finish(d)
