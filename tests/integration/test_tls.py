"""HTTPS: a certificate made here with openssl is served over TLS 1.2+ only,
plain HTTP on the TLS port gets nothing, and weak setups are refused at start
with one clear line and exit code 2."""
import os
import socket
import subprocess

import pytest

from conftest import BIN


def openssl(*args, cwd):
    subprocess.run(['openssl', *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def self_signed(d, name, key_args=('-newkey', 'rsa:2048'), days='2'):
    """Makes <name>.crt/<name>.key in d (key mode 600); returns their paths."""
    crt, key = os.path.join(d, name + '.crt'), os.path.join(d, name + '.key')
    openssl('req', '-x509', *key_args, '-nodes', '-keyout', key, '-out', crt, '-days', days,
            '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', cwd=d)
    os.chmod(key, 0o600)
    return crt, key


def expired(d):
    """A certificate valid for one day in 2020, signed by its own key through `openssl ca`."""
    key, csr, crt = (os.path.join(d, f'old.{x}') for x in ('key', 'csr', 'crt'))
    with open(os.path.join(d, 'ca.cnf'), 'w') as f:
        f.write('[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n'
                'default_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n')
    open(os.path.join(d, 'index.txt'), 'w').close()
    with open(os.path.join(d, 'serial'), 'w') as f:
        f.write('01\n')
    openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr,
            '-subj', '/CN=127.0.0.1', cwd=d)
    openssl('ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', key, '-in', csr,
            '-out', crt, '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', cwd=d)
    os.chmod(key, 0o600)
    return crt, key


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('pki'))
    good = self_signed(d, 'good')
    return {'dir': d, 'good': good}


def curl(*args):
    return subprocess.run(['curl', '-sS', '--max-time', '10', *args], capture_output=True,
                          text=True)


def test_https_is_served_with_the_certificate(make_daemon, pki):
    crt, key = pki['good']
    d = make_daemon(args=['--tls-cert', crt, '--tls-key', key], scheme='https').start()
    base = f'https://127.0.0.1:{d.port}'
    r = curl('--cacert', crt, '-w', '\n%{http_code}', base + '/v1/version')
    assert r.returncode == 0, r.stderr
    body, code = r.stdout.rsplit('\n', 1)
    assert code == '200' and '"virtvault"' in body
    # The spec-checking client over HTTPS as well.
    assert d.client.get('/v1/domains').status == 200
    for flags in (['--tlsv1.2', '--tls-max', '1.2'], ['--tlsv1.3']):
        r = curl('--cacert', crt, '-o', '/dev/null', '-w', '%{http_code}', *flags,
                 base + '/healthz')
        assert r.returncode == 0 and r.stdout == '200', (flags, r.stderr)
    assert 'listening on https://' in d.log()


def test_old_protocols_and_plain_http_are_refused(make_daemon, pki):
    crt, key = pki['good']
    d = make_daemon(args=['--tls-cert', crt, '--tls-key', key], scheme='https').start()
    # TLS 1.1 and 1.0, with the client's own floor lowered so that the refusal is the server's.
    for proto in ('-tls1_1', '-tls1'):
        r = subprocess.run(['openssl', 's_client', '-connect', f'127.0.0.1:{d.port}', proto,
                            '-cipher', 'DEFAULT@SECLEVEL=0'], input='', capture_output=True,
                           text=True, timeout=15)
        assert r.returncode != 0, (proto, r.stdout[-500:])
        assert 'no peer certificate available' in r.stdout, (proto, r.stdout[-500:])
    # Plain HTTP to the TLS port: no HTTP answer comes back.
    r = curl('-o', '/dev/null', '-w', '%{http_code}', f'http://127.0.0.1:{d.port}/healthz')
    assert r.returncode != 0 and r.stdout in ('', '000'), r
    with socket.create_connection(('127.0.0.1', d.port), timeout=5) as s:
        s.sendall(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        data = b''
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        assert b'HTTP/1.1 200' not in data
    # The daemon goes on serving HTTPS after all that.
    r = curl('--cacert', crt, '-o', '/dev/null', '-w', '%{http_code}',
             f'https://127.0.0.1:{d.port}/healthz')
    assert r.stdout == '200', r


def refused(tmp_path, crt, key):
    r = subprocess.run([BIN, '--listen', '127.0.0.1:0', '--tls-cert', crt, '--tls-key', key,
                        '--db', str(tmp_path / 'db'), '--vault-dir', str(tmp_path / 'vault')],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('virtvaultd: '), r.stderr
    assert not (tmp_path / 'db').exists(), 'refused before anything was opened'
    return lines[0]


def test_weak_setups_are_refused(tmp_path, pki):
    d = pki['dir']
    crt, key = pki['good']

    # A key file others may read.
    loose = os.path.join(d, 'loose.key')
    with open(key, 'rb') as src, open(loose, 'wb') as dst:
        dst.write(src.read())
    for mode in (0o644, 0o640, 0o604):
        os.chmod(loose, mode)
        assert 'read by others' in refused(tmp_path, crt, loose)

    # A key of another certificate.
    other_crt, other_key = self_signed(d, 'other')
    assert 'does not belong' in refused(tmp_path, crt, other_key)
    assert 'does not belong' in refused(tmp_path, other_crt, key)

    # RSA under 2048 bits.
    small = self_signed(d, 'small', key_args=('-newkey', 'rsa:1024'))
    assert 'at least 2048' in refused(tmp_path, *small)

    # Expired.
    assert 'expired' in refused(tmp_path, *expired(d))

    # Unreadable, missing, and not PEM at all.
    assert 'cannot read' in refused(tmp_path, crt, os.path.join(d, 'missing.key'))
    assert 'cannot read' in refused(tmp_path, os.path.join(d, 'missing.crt'), key)
    junk = os.path.join(d, 'junk.key')
    with open(junk, 'w') as f:
        f.write('not a key\n')
    os.chmod(junk, 0o600)
    assert 'private key' in refused(tmp_path, crt, junk)
    assert 'not a PEM certificate' in refused(tmp_path, junk, key)
    assert 'not a regular file' in refused(tmp_path, d, key)


def test_ec_key_is_accepted(make_daemon, pki):
    crt, key = self_signed(pki['dir'], 'ec', key_args=('-newkey', 'ec',
                                                       '-pkeyopt', 'ec_paramgen_curve:P-256'))
    d = make_daemon(args=['--tls-cert', crt, '--tls-key', key], scheme='https').start()
    r = curl('--cacert', crt, '-o', '/dev/null', '-w', '%{http_code}',
             f'https://127.0.0.1:{d.port}/healthz')
    assert r.stdout == '200', r


def test_only_aead_suites_with_forward_secrecy(make_daemon, pki):
    crt, key = pki['good']
    d = make_daemon(args=['--tls-cert', crt, '--tls-key', key], scheme='https',
                    no_auth=False).start()

    def handshake(cipher):
        return subprocess.run(['openssl', 's_client', '-connect', f'127.0.0.1:{d.port}',
                               '-tls1_2', '-cipher', f'{cipher}@SECLEVEL=0'], input='',
                              capture_output=True, text=True, timeout=15)
    # CBC with SHA-1 and SHA-256 MACs, and RSA key transport: refused by the server.
    for weak in ('ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384', 'AES128-GCM-SHA256',
                 'AES256-SHA'):
        r = handshake(weak)
        assert r.returncode != 0 and 'Cipher is (NONE)' in r.stdout + r.stderr or \
            'no peer certificate available' in r.stdout, (weak, r.stdout[-400:])
    r = handshake('ECDHE-RSA-AES128-GCM-SHA256')
    assert r.returncode == 0 and 'ECDHE-RSA-AES128-GCM-SHA256' in r.stdout, r.stdout[-400:]
    # Browsers are told to come back over HTTPS only.
    resp = d.client.get('/healthz')
    assert resp.headers.get('strict-transport-security', '').startswith('max-age='), resp.headers
