"""docs/ci.md's command lines, extracted and run as written against a real daemon and QEMU."""
import os
import re
import subprocess

from client import ROOT

CLI = os.environ.get('VIRTVAULT_CLI', os.path.join(ROOT, 'build', 'cli', 'virtvault'))
DOC = os.path.join(ROOT, 'docs', 'ci.md')


def blocks(lang):
    with open(DOC) as f:
        return re.findall(r'```' + lang + r'\n(.*?)```', f.read(), re.S)


def run_block(d, domain, text, tmp_path, name):
    token = os.path.join(tmp_path, 'token')
    with open(token, 'w') as f:
        f.write(d.token + '\n')
    restore_dir = os.path.join(d.vault_dir, 'restore', name)
    env = dict(os.environ, VIRTVAULT_URL=d.url, VIRTVAULT_TOKEN_FILE=token, DOMAIN=domain,
               RESTORE_DIR=restore_dir,
               PATH=os.path.dirname(os.path.abspath(CLI)) + ':' + os.environ['PATH'])
    r = subprocess.run(['bash', '-euo', 'pipefail', '-c', text + '\necho "BACKUP=$BACKUP"'],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1].split('=', 1)[1], restore_dir


def test_ci_recipe_as_written(make_daemon, qemu_domain, tmp_path):
    # The recipe holds a token file, so its daemon asks for one, as a deployed daemon does.
    vv_qemu = make_daemon('qemu:///system', no_auth=False).start()
    vv_qemu.wait_ready()
    assert vv_qemu.token
    cli, curl = blocks('sh')
    backup, restore_dir = run_block(vv_qemu, qemu_domain, cli, tmp_path, 'cli')
    assert vv_qemu.client.get(f'/v1/domains/{qemu_domain}/backups/{backup}').json['state'] \
        == 'completed'
    assert os.listdir(restore_dir)
    backup2, _ = run_block(vv_qemu, qemu_domain, curl, tmp_path, 'curl')
    assert backup2 != backup
    assert vv_qemu.client.get(f'/v1/domains/{qemu_domain}/backups/{backup2}').json['state'] \
        == 'completed'
    # The pipeline steps carry the CLI block's lines.
    for y in blocks('yaml'):
        for line in cli.strip().splitlines():
            assert line.split(' backups ')[0].split('=')[0] in y
            assert ' backups ' + line.split(' backups ')[1] in y
