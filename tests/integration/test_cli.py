"""The virtvault client against a real daemon: output, --wait, exit codes, usage errors.

The binary is $VIRTVAULT_CLI (default build/cli/virtvault)."""
import json
import os
import re
import subprocess

from client import ROOT

CLI = os.environ.get('VIRTVAULT_CLI', os.path.join(ROOT, 'build', 'cli', 'virtvault'))


def run(d, *args, url=None, token=True):
    env = dict(os.environ)
    env.pop('VIRTVAULT_URL', None)
    env.pop('VIRTVAULT_TOKEN_FILE', None)
    cmd = [CLI, '--url', url or d.url]
    if token and d.token:
        path = os.path.join(d.dir, 'cli-token')
        with open(path, 'w') as f:
            f.write(d.token + '\n')
        cmd += ['--token-file', path]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env,
                          timeout=120)


def test_json_output_equals_api(vv_test):
    r = run(vv_test, '-o', 'json', 'domains', 'list')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == vv_test.client.get('/v1/domains').json
    r = run(vv_test, '-o', 'json', 'version')
    assert r.returncode == 0
    assert json.loads(r.stdout) == vv_test.client.get('/v1/version').json


def test_table_output(vv_test):
    r = run(vv_test, 'domains', 'list')
    assert r.returncode == 0, r.stderr
    assert 'test' in r.stdout.splitlines()[1]
    assert r.stdout.splitlines()[0].split('\t')[0] != ''


def test_snapshot_create_wait_then_show(vv_test):
    r = run(vv_test, '-o', 'json', '--wait', 'snapshots', 'create', 'test')
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job['state'] == 'succeeded'
    name = job['result']['snapshot']
    # not a terminal: plain progress lines on stderr
    assert 'succeeded' in r.stderr
    r = run(vv_test, '-o', 'json', 'snapshots', 'show', 'test', name)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['name'] == name


def test_exit_not_found(vv_test):
    r = run(vv_test, 'domains', 'show', 'no-such-domain')
    assert r.returncode == 3
    assert 'no-such-domain' in r.stderr or 'HTTP 404' in r.stderr
    r = run(vv_test, 'jobs', 'show', '999999')
    assert r.returncode == 3


def test_exit_usage(vv_test):
    assert run(vv_test, 'nonsense').returncode == 2
    assert run(vv_test, 'domains', 'show').returncode == 2
    assert run(vv_test, '-o', 'yaml', 'domains', 'list').returncode == 2
    assert run(vv_test, '--body', '[1]', 'snapshots', 'create', 'test').returncode == 2
    r = run(vv_test, '--body', '{"name": 5}', 'snapshots', 'create', 'test')
    assert r.returncode == 2
    assert 'HTTP 400' in r.stderr
    assert '  /name: must be a string' in r.stderr, r.stderr  # the field the problem names
    # A token file that is empty or missing: a usage error that says which.
    r = run(vv_test, '--token-file', '/dev/null', 'domains', 'list', token=False)
    assert r.returncode == 2 and 'cannot read /dev/null: the file is empty' in r.stderr, r.stderr
    r = run(vv_test, '--token-file', '/nonexistent', 'domains', 'list', token=False)
    assert r.returncode == 2 and 'No such file or directory' in r.stderr, r.stderr


def test_exit_unreachable(vv_test):
    r = run(vv_test, 'version', url='http://127.0.0.1:1')
    assert r.returncode == 5
    assert 'unreachable' in r.stderr


def test_exit_conflict(vv_test):
    r = run(vv_test, '-o', 'json', '--wait', '--body', '{"name": "dup"}',
            'snapshots', 'create', 'test')
    assert r.returncode == 0, r.stderr
    r = run(vv_test, '--wait', '--body', '{"name": "dup"}', 'snapshots', 'create', 'test')
    assert r.returncode in (1, 4), r.stderr


def test_backup_create_wait_and_restore_qemu(vv_qemu, qemu_domain):
    r = run(vv_qemu, '-o', 'json', '--wait', 'backups', 'create', qemu_domain)
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job['state'] == 'succeeded', job
    backup_id = job['result']['backup_id']
    r = run(vv_qemu, '-o', 'json', 'backups', 'show', qemu_domain, backup_id)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['state'] == 'completed'
    target = os.path.join(vv_qemu.vault_dir, 'restore', backup_id)
    body = json.dumps({'target_dir': target, 'format': 'raw'})
    r = run(vv_qemu, '-o', 'json', '--wait', '--body', body, 'backups', 'restore',
            qemu_domain, backup_id)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)['state'] == 'succeeded'
    assert os.listdir(target)


def test_post_retried_after_503_keeps_its_idempotency_key(vv_test):
    """A server that answers 503 once: the client sends the POST again with the same key."""
    import http.server
    import threading

    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get('Content-Length', 0)))
            seen.append(self.headers.get('Idempotency-Key'))
            status = 503 if len(seen) == 1 else 404
            body = b'{"detail": "gone", "status": %d}' % status
            self.send_response(status)
            self.send_header('Content-Type', 'application/problem+json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(('127.0.0.1', 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        r = run(vv_test, 'snapshots', 'create', 'test',
                url=f'http://127.0.0.1:{srv.server_address[1]}')
    finally:
        srv.shutdown()
    assert r.returncode == 3, r.stderr
    assert len(seen) == 2
    assert seen[0] and seen[0] == seen[1]
    assert re.fullmatch(r'[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}',
                        seen[0])


def test_lists_follow_next_page_token_or_print_one_page(vv_test):
    c = vv_test.client
    for i in range(5):
        assert c.post('/v1/domains/test/checkpoints', json={'name': f'p{i}'}).status == 201
    names = [f'p{i}' for i in range(5)]
    # Every page, joined (the CLI asks 1000 at a time: compare with a page of 2 through the API).
    assert c.get('/v1/domains/test/checkpoints?limit=2').json['next_page_token']
    r = run(vv_test, '-o', 'json', 'checkpoints', 'list', 'test')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [i['name'] for i in out['items']] == names and out['next_page_token'] is None
    # One page with --limit; the next page's token on stderr; --page-token goes on from it.
    r = run(vv_test, '-o', 'json', '--limit', '2', 'checkpoints', 'list', 'test')
    assert r.returncode == 0, r.stderr
    page = json.loads(r.stdout)
    assert [i['name'] for i in page['items']] == names[:2]
    token = page['next_page_token']
    assert f'--page-token {token}' in r.stderr
    r = run(vv_test, '-o', 'json', '--page-token', token, 'checkpoints', 'list', 'test')
    assert r.returncode == 0, r.stderr
    assert [i['name'] for i in json.loads(r.stdout)['items']] == names[2:]
    r = run(vv_test, '--limit', '2', '--page-token', token, 'checkpoints', 'list', 'test')
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith('p2'), r.stdout
    # Jobs and audit page the same way (every write is audited).
    r = run(vv_test, '-o', 'json', 'audit')
    assert r.returncode == 0 and len(json.loads(r.stdout)['items']) == 5, r.stderr
    # Bad values: usage errors; a token the service never gave: its 400, naming page_token.
    for args in (['--limit', '0'], ['--limit', '1001'], ['--limit', 'x'],
                 ['--limit', '2', 'domains', 'show', 'test']):
        r = run(vv_test, *(args if len(args) > 2 else args + ['domains', 'list']))
        assert r.returncode == 2, (args, r.stderr)
    r = run(vv_test, '--page-token', 'garbage', 'jobs', 'list')
    assert r.returncode == 2 and '?page_token: is not one this service gave out' in r.stderr, \
        r.stderr
