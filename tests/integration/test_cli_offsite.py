"""The virtvault client's offsite commands against a real daemon and a real Ceph RADOS Gateway
(objstore.py): remotes create/list/show/update/check/delete with the secret from a file or the
environment and never printed; backups copy --wait and copies; remotes backups, restore --wait
(byte-identical, and with --define as a new domain) and delete-backup; bad arguments refused with
a clear message before any request. Also the daemon's ?wait= on the copy and remote restore
routes, and a remote restore's define (the safe-clone rules of a local restore).

The binary is $VIRTVAULT_CLI (default build/cli/virtvault)."""
import json
import os
import subprocess

from helpers import MiB, backup, keep, problem, same_disk, virsh
from test_cli import CLI
from test_offsite import remote_body


class Cli:
    """Runs the client against daemon d; remembers every output, to show the secret is in none."""

    def __init__(self, d):
        self.d = d
        self.seen = []

    def __call__(self, *args, env=None):
        e = {k: v for k, v in os.environ.items()
             if k not in ('VIRTVAULT_URL', 'VIRTVAULT_TOKEN_FILE', 'VIRTVAULT_REMOTE_SECRET')}
        e.update(env or {})
        cmd = [CLI, '--url', self.d.url]
        if self.d.token:
            path = os.path.join(self.d.dir, 'cli-token')
            with open(path, 'w') as f:
                f.write(self.d.token + '\n')
            cmd += ['--token-file', path]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, env=e, timeout=300)
        self.seen += [p.stdout, p.stderr]
        return p

    def json(self, *args, **kw):
        p = self('-o', 'json', *args, **kw)
        assert p.returncode == 0, (args, p.stderr)
        return json.loads(p.stdout) if p.stdout.strip() else None


def secret_file(tmp_path, secret):
    p = tmp_path / 'secret'
    p.write_text(secret + '\n')
    os.chmod(p, 0o600)
    return str(p)


def create_args(b, name='off', prefix='cli/a'):
    return ['remotes', 'create', name, '--endpoint', b.endpoint, '--bucket', b.bucket,
            '--prefix', prefix, '--access-key', b.access_key]


def test_remotes_commands_secret_and_bad_arguments(vv_test, objstore_bucket, tmp_path):
    b = objstore_bucket
    cli = Cli(vv_test)
    c = vv_test.client

    # Create with the secret from a file; the answer says only that it is set.
    rem = cli.json(*create_args(b), '--secret-file', secret_file(tmp_path, b.secret_key),
                   '--lock-days', '0')
    assert rem['name'] == 'off' and rem['secret_set'] is True and 'secret' not in rem, rem
    assert rem['prefix'] == 'cli/a' and rem['path_style'] is True and rem['endpoint'] == b.endpoint
    # ... or from the environment; --virtual-host sets path_style false.
    rem = cli.json(*create_args(b, name='env'), '--virtual-host',
                   env={'VIRTVAULT_REMOTE_SECRET': b.secret_key})
    assert rem['path_style'] is False, rem
    with open(os.path.join(vv_test.dir, 'remote-secrets', 'env')) as f:
        assert f.read() == b.secret_key

    # list and show: --json is the API's answer; the table names the remotes.
    assert cli.json('remotes', 'list') == c.get('/v1/remotes').json
    assert cli.json('remotes', 'show', 'off') == c.get('/v1/remotes/off').json
    p = cli('remotes', 'list')
    assert p.returncode == 0 and p.stdout.splitlines()[0].split('\t')[0] == 'name', p.stdout
    assert [ln.split('\t')[0] for ln in p.stdout.splitlines()[1:]] == ['env', 'off']

    # The check: ok exits 0; a bucket that refuses exits 1 and says where and why.
    chk = cli.json('remotes', 'check', 'off')
    assert chk['ok'] is True and chk['failed_step'] is None, chk
    cli.json(*create_args(b, name='bad'), '--secret-file', secret_file(tmp_path, 'not-the-one'))
    p = cli('remotes', 'check', 'bad')
    assert p.returncode == 1, p
    assert 'remote bad: the check failed at bucket' in p.stderr, p.stderr
    assert 'SignatureDoesNotMatch' in p.stderr, p.stderr

    # update changes what it is given and keeps the rest, the secret too.
    rem = cli.json('remotes', 'update', 'off', '--prefix', 'cli/b')
    assert rem['prefix'] == 'cli/b' and rem['bucket'] == b.bucket and rem['path_style'], rem
    assert cli.json('remotes', 'check', 'off')['ok'] is True
    # A change sends back what a GET answered, nulls too; '' clears a file.
    rem = cli.json('remotes', 'update', 'off', '--ca-file', '', '--key-file', '')
    assert rem['ca_file'] is None and rem['key_file'] is None, rem
    upd = {k: v for k, v in c.get('/v1/remotes/off').json.items()
           if k in ('endpoint', 'bucket', 'prefix', 'access_key', 'ca_file', 'key_file')}
    assert upd['ca_file'] is None
    r = c.put('/v1/remotes/off', json=upd)
    assert r.status == 200 and r.json['prefix'] == 'cli/b', r
    rem = cli.json('remotes', 'update', 'bad', '--secret-file', secret_file(tmp_path, b.secret_key))
    assert cli.json('remotes', 'check', 'bad')['ok'] is True

    # Bad arguments: exit 2 with a clear message, nothing sent or changed.
    for args, msg in [
        (create_args(b, name='x') + ['--secret', b.secret_key],
         'the secret is never taken on the command line'),
        (create_args(b, name='x') + [f'--secret={b.secret_key}'],
         'the secret is never taken on the command line'),
        (create_args(b, name='x') + ['--body', json.dumps({'secret': b.secret_key})],
         'the secret is never taken on the command line'),
        (create_args(b, name='x'), 'remotes create needs --secret-file PATH or '
                                   '$VIRTVAULT_REMOTE_SECRET'),
        (['remotes', 'create', 'x', '--bucket', b.bucket], 'needs --endpoint URL'),
        (create_args(b, name='x') + ['--secret-file', str(tmp_path / 'missing')],
         'No such file or directory'),
        (create_args(b, name='x') + ['--secret-file', '/dev/null'], 'the file is empty'),
        (create_args(b, name='x') + ['--secret-file', secret_file(tmp_path, 's'),
                                     '--lock-days', 'soon'], '--lock-days must be a whole number'),
        (['remotes', 'show'], 'remotes show takes NAME'),
        (['remotes', 'show', 'off', 'more'], 'remotes show takes NAME'),
        (['remotes', 'check', 'off', '--virtual-host'], "remotes check has no option"),
        (['backups', 'copy', 'test', '1'], 'backups copy needs --remote NAME'),
        (['backups', 'copy', 'test', '1', '--remote'], '--remote needs NAME'),
        (['remotes', 'restore', 'off', '1'], 'remotes restore needs --target-dir DIR'),
        (['remotes', 'restore', 'off', '1', '--target-dir', '/x', '--bandwidth', '-1'],
         '--bandwidth must be a whole number'),
        (['remotes', 'backups', 'off', '--domain'], '--domain needs DOMAIN'),
        (['remotes', 'delete-backup', 'off', '../x'], "bad argument '../x'"),
    ]:
        p = cli(*args)
        assert p.returncode == 2 and msg in p.stderr, (args, p.returncode, p.stderr)
    assert c.get('/v1/remotes/x').status == 404
    # What the service refuses: the problem's detail and the field, exit 2.
    p = cli(*create_args(b, name='x'), '--bucket', 'NO', env={'VIRTVAULT_REMOTE_SECRET': 's'})
    assert p.returncode == 2 and 'HTTP 400' in p.stderr and '  /bucket: must be' in p.stderr, p
    p = cli('remotes', 'update', 'off', '--ca-file', 'relative')
    assert p.returncode == 2 and '  /ca_file: must be an absolute path' in p.stderr, p.stderr
    p = cli(*create_args(b), env={'VIRTVAULT_REMOTE_SECRET': 's'})
    assert p.returncode == 4 and 'HTTP 409' in p.stderr, p
    p = cli('remotes', 'show', 'nope')
    assert p.returncode == 3 and 'nope' in p.stderr, p
    p = cli('remotes', 'update', 'nope', '--prefix', 'x')
    assert p.returncode == 3, p
    p = cli('remotes', 'restore', 'off', 'nope', '--target-dir',
            os.path.join(vv_test.vault_dir, 'restore', 'n'))
    assert p.returncode == 3 and 'HTTP 404' in p.stderr, p
    assert not os.path.exists(os.path.join(vv_test.vault_dir, 'restore', 'n'))

    # delete, then it is gone.
    assert cli('remotes', 'delete', 'bad').returncode == 0
    assert cli('remotes', 'show', 'bad').returncode == 3
    assert [r['name'] for r in cli.json('remotes', 'list')['items']] == ['env', 'off']

    # The secret is in no output, no log line.
    for text in cli.seen:
        assert b.secret_key not in text
    assert b.secret_key not in vv_test.log()


def test_copy_restore_define_and_delete_through_the_cli(vv_qemu, sandbox, objstore_bucket,
                                                        tmp_path):
    b = objstore_bucket
    cli = Cli(vv_qemu)
    c = vv_qemu.client
    size = 64 * MiB
    cli.json(*create_args(b), env={'VIRTVAULT_REMOTE_SECRET': b.secret_key})
    restore_root = os.path.join(vv_qemu.vault_dir, 'restore')
    clone = None

    with sandbox.domain(size='64M') as dom:
        try:
            sandbox.write(dom, 0, 8 * MiB, 0x5a)
            sandbox.write(dom, 16 * MiB, 4 * MiB, 'random')
            keep(dom, size, str(tmp_path / 'full.raw'))
            full = backup(c, dom, type='full')
            sandbox.write(dom, 32 * MiB, 2 * MiB, 0x6b)
            keep(dom, size, str(tmp_path / 'inc.raw'))
            inc = backup(c, dom, type='incremental')

            # backups copy --wait: the ended job; copies lists the copy.
            p = cli('-o', 'json', 'backups', 'copy', dom, full['id'], '--remote', 'off', '--wait')
            assert p.returncode == 0, p.stderr
            job = json.loads(p.stdout)
            assert job['kind'] == 'backup_copy' and job['state'] == 'succeeded', job
            assert 'succeeded' in p.stderr  # the progress lines
            copies = cli.json('backups', 'copies', dom, full['id'])
            assert [(x['remote'], x['state']) for x in copies['items']] == [('off', 'completed')]
            p = cli('backups', 'copies', dom, full['id'])
            assert p.returncode == 0 and p.stdout.splitlines()[1].startswith('off\tcompleted'), \
                p.stdout

            # The daemon's ?wait on POST .../copies: 200 with the ended job.
            r = c.post(f'/v1/domains/{dom}/backups/{inc["id"]}/copies?wait=120',
                       json={'remote': 'off'})
            assert r.status == 200 and r.json['state'] == 'succeeded', r
            assert r.headers['location'] == f'/v1/jobs/{r.json["id"]}'
            problem(c.post(f'/v1/domains/{dom}/backups/{inc["id"]}/copies?wait=x',
                           json={'remote': 'off'}), 400)

            # remotes backups, filtered by domain and host.
            items = cli.json('remotes', 'backups', 'off', '--domain', full['domain_uuid'])['items']
            assert sorted(i['id'] for i in items) == sorted([full['id'], inc['id']]), items
            assert cli.json('remotes', 'backups', 'off', '--host', 'elsewhere')['items'] == []
            p = cli('--limit', '1', 'remotes', 'backups', 'off', '--host', os.uname().nodename)
            assert p.returncode == 0 and len(p.stdout.splitlines()) == 2, p
            assert '--page-token' in p.stderr, p.stderr

            # remotes restore --wait: byte-identical, the result as the API has it.
            target = os.path.join(restore_root, 'cli-raw')
            p = cli('-o', 'json', 'remotes', 'restore', 'off', inc['id'], '--target-dir', target,
                    '--format', 'raw', '--wait')
            assert p.returncode == 0, p.stderr
            job = json.loads(p.stdout)
            assert job['kind'] == 'offsite_restore' and job['state'] == 'succeeded', job
            assert job['result']['remote'] == 'off' and job['result']['domain'] is None, job
            same_disk(job['result']['disks'][0]['path'], str(tmp_path / 'inc.raw'))
            assert os.listdir(target) == [os.path.basename(job['result']['disks'][0]['path'])]

            # A local restore takes the same options.
            p = cli('-o', 'json', 'backups', 'restore', dom, inc['id'], '--target-dir',
                    os.path.join(restore_root, 'cli-local'), '--format', 'raw', '--wait')
            assert p.returncode == 0, p.stderr
            same_disk(json.loads(p.stdout)['result']['disks'][0]['path'], str(tmp_path / 'inc.raw'))

            # With --define: a new domain (new name, new UUID) on the restored file.
            clone = dom + '-off'
            target = os.path.join(restore_root, 'cli-def')
            p = cli('-o', 'json', 'remotes', 'restore', 'off', full['id'], '--target-dir', target,
                    '--define', clone, '--wait')
            assert p.returncode == 0, p.stderr
            res = json.loads(p.stdout)['result']
            assert res['domain']['name'] == clone, res
            path = res['disks'][0]['path']
            assert path == os.path.join(target, clone + '-vda.qcow2'), res
            same_disk(path, str(tmp_path / 'full.raw'))
            xml = virsh('dumpxml', clone).stdout
            orig = virsh('dumpxml', dom).stdout
            uuid = xml.split('<uuid>')[1].split('<')[0]
            assert uuid == res['domain']['uuid'] and uuid not in orig
            assert f"<source file='{path}'" in xml and "type='qcow2'" in xml, xml
            assert virsh('domuuid', dom).stdout.strip() not in xml
            # The original's disk is not the clone's.
            orig_disk = orig.split("<source file='")[1].split("'")[0]
            assert orig_disk not in xml
            # A name taken: 409, nothing written.
            p = cli('remotes', 'restore', 'off', full['id'], '--target-dir', target + '2',
                    '--define', clone)
            assert p.returncode == 4 and 'exists already' in p.stderr, p
            assert not os.path.exists(target + '2')
            p = cli('remotes', 'restore', 'off', full['id'], '--target-dir', target + '3',
                    '--define', 'bad name')
            assert p.returncode == 2 and '/define/name' in p.stderr, p.stderr
            p = cli('remotes', 'restore', 'off', full['id'], '--target-dir', target + '3',
                    '--define', dom + '-k', '--keep', 'everything')
            assert p.returncode == 2 and '/define/keep' in p.stderr, p.stderr

            # The daemon's ?wait on POST .../restore: 200 with the ended job; bad wait 400.
            r = c.post(f'/v1/remotes/off/backups/{full["id"]}/restore?wait=120',
                       json={'target_dir': os.path.join(restore_root, 'w'), 'format': 'raw'})
            assert r.status == 200 and r.json['state'] == 'succeeded', r
            assert r.headers['location'] == f'/v1/jobs/{r.json["id"]}'
            same_disk(r.json['result']['disks'][0]['path'], str(tmp_path / 'full.raw'))
            r = c.post(f'/v1/remotes/off/backups/{full["id"]}/restore?wait=301',
                       json={'target_dir': os.path.join(restore_root, 'w2'), 'format': 'raw'})
            assert problem(r, 400)['errors'][0]['parameter'] == 'wait', r.json
            assert not os.path.exists(os.path.join(restore_root, 'w2'))
            # ?wait=0 answers at once; a retry with the same Idempotency-Key (as the client
            # sends one) gets the same job, not a second restore.
            body = {'target_dir': os.path.join(restore_root, 'w0'), 'format': 'raw'}
            key = {'Idempotency-Key': 'cli-offsite-restore-w0'}
            r = c.post(f'/v1/remotes/off/backups/{full["id"]}/restore?wait=0', json=body,
                       headers=key)
            assert r.status == 202, r
            r2 = c.post(f'/v1/remotes/off/backups/{full["id"]}/restore?wait=0', json=body,
                        headers=key)
            assert r2.status == 202 and r2.json['id'] == r.json['id'], r2
            assert c.wait_job(r.json['id'])['state'] == 'succeeded'
        finally:
            if clone:
                virsh('undefine', clone, check=False)

    # remotes prune: the plan of a retention in the bucket (--dry-run changes nothing), then
    # the job (--wait) merging the full into the incremental by upload.
    plan = cli.json('remotes', 'prune', 'off', '--domain', full['domain_uuid'], '--keep-last',
                    '1', '--dry-run')
    assert plan['dry_run'] is True and plan['keep'] == [inc['id']], plan
    assert plan['remove'] == [full['id']], plan
    assert plan['merge'] == [{'into': inc['id'], 'from': [full['id']], 'onto': None}], plan
    assert sorted(i['id'] for i in cli.json('remotes', 'backups', 'off')['items']) == sorted(
        [full['id'], inc['id']])
    p = cli('remotes', 'prune', 'off', '--keep-last', '1')
    assert p.returncode == 2 and '--domain' in p.stderr, p
    p = cli('remotes', 'prune', 'off', '--domain', full['domain_uuid'], '--keep-last', 'x')
    assert p.returncode == 2 and 'keep-last' in p.stderr, p
    job = cli.json('remotes', 'prune', 'off', '--domain', full['domain_uuid'], '--keep-last', '1',
                   '--wait')
    assert job['kind'] == 'offsite_prune' and job['state'] == 'succeeded', job
    items = cli.json('remotes', 'backups', 'off')['items']
    assert [(i['id'], i['type'], i['parent_id']) for i in items] == [
        (inc['id'], 'full', None)], items
    target = os.path.join(restore_root, 'cli-merged')
    job = cli.json('remotes', 'restore', 'off', inc['id'], '--target-dir', target, '--format',
                   'raw', '--wait')
    same_disk(job['result']['disks'][0]['path'], str(tmp_path / 'inc.raw'))
    # checkpoints adopt (the domain is gone by now): the service's 404, and a missing option.
    p = cli('checkpoints', 'adopt', full['domain_uuid'], '--remote', 'off')
    assert p.returncode == 3 and 'not found' in p.stderr, p
    p = cli('checkpoints', 'adopt', full['domain_uuid'])
    assert p.returncode == 2 and '--remote' in p.stderr, p

    # delete-backup: gone; again: not found.
    assert cli('remotes', 'delete-backup', 'off', inc['id']).returncode == 0
    assert cli.json('remotes', 'backups', 'off')['items'] == []
    p = cli('remotes', 'delete-backup', 'off', inc['id'])
    assert p.returncode == 3, p
    assert b.keys() == {}

    for text in cli.seen:
        assert b.secret_key not in text
