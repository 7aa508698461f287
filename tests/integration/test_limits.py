"""Slow clients and connection limits: a request that is dribbled in is cut
off at --conn-timeout however busy the client keeps the line, an idle
connection is closed, and --per-ip-limit holds for one address while others
are still served."""
import socket
import time

import pytest

from client import Client


def recv_all(s, timeout):
    """Reads until the peer closes or `timeout` passes; returns (bytes, closed)."""
    s.settimeout(timeout)
    data = b''
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def closed_by_peer(s):
    """True when the server has closed the socket (EOF or reset on a short read)."""
    s.settimeout(0.2)
    try:
        return s.recv(1) == b''
    except socket.timeout:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def dribble(port, payload, interval, budget):
    """Sends payload a byte every `interval` s; returns the seconds until the server closed."""
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    t0 = time.monotonic()
    try:
        for b in payload:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0
            if closed_by_peer(s):
                return time.monotonic() - t0
            time.sleep(max(0.0, interval - 0.2))
            if time.monotonic() - t0 > budget:
                return None
        return None
    finally:
        s.close()


@pytest.fixture
def vv_short(make_daemon):
    return make_daemon(args=['--conn-timeout', '2', '--per-ip-limit', '8']).start()


def test_dribbled_headers_are_cut_off(vv_short):
    headers = b'GET /v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\n' + b'X-Slow: ' + b'a' * 200
    took = dribble(vv_short.port, headers, 0.4, budget=10)
    assert took is not None, 'a dribbling client kept its connection past the deadline'
    assert 1.5 <= took <= 4.0, took
    # A dribbled body is cut off the same way.
    body = b'{"name": "' + b'x' * 200
    start = (b'POST /v1/domains HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
             b'Content-Length: 1000\r\n\r\n')
    s = socket.create_connection(('127.0.0.1', vv_short.port), timeout=5)
    s.sendall(start)
    t0 = time.monotonic()
    gone = None
    for b in body:
        try:
            s.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            gone = time.monotonic() - t0
            break
        if closed_by_peer(s):
            gone = time.monotonic() - t0
            break
        if time.monotonic() - t0 > 10:
            break
    s.close()
    assert gone is not None and gone <= 4.0, gone
    # The daemon is fine and serves the next client at once.
    assert vv_short.client.get('/v1/domains').status == 200


def test_idle_and_half_sent_connections_are_closed(vv_short):
    idle = socket.create_connection(('127.0.0.1', vv_short.port))
    half = socket.create_connection(('127.0.0.1', vv_short.port))
    half.sendall(b'GET /v1/domains HTTP/1.1\r\nHo')
    t0 = time.monotonic()
    for s in (idle, half):
        data, closed = recv_all(s, 6)
        assert closed and data == b'', (data, closed)
        s.close()
    assert time.monotonic() - t0 < 5
    # A keep-alive connection serves several requests and is then closed after being idle.
    s = socket.create_connection(('127.0.0.1', vv_short.port))
    for _ in range(3):
        s.sendall(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        s.settimeout(5)
        assert s.recv(4096).startswith(b'HTTP/1.1 200')
    data, closed = recv_all(s, 6)
    assert closed
    s.close()


def test_per_ip_limit_holds_while_others_are_served(make_daemon):
    # A long timeout: the held connections must outlive the whole test.
    d = make_daemon(args=['--conn-timeout', '60', '--per-ip-limit', '8']).start()
    port = d.port
    held = []
    deadline = time.monotonic() + 10
    while len(held) < 8:
        # Connections of the fixture's own readiness probe may still be closing: retry.
        assert time.monotonic() < deadline, f'only {len(held)} connections were served'
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
        try:
            s.sendall(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
            if s.recv(4096).startswith(b'HTTP/1.1 200'):
                held.append(s)  # keep-alive: the connection stays open and counts
                continue
        except (ConnectionResetError, BrokenPipeError):
            pass
        s.close()
        time.sleep(0.1)
    refused = 0
    for _ in range(4):
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
        try:
            s.sendall(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
            data, closed = recv_all(s, 3)
            if closed and not data.startswith(b'HTTP/1.1 200'):
                refused += 1
        except (BrokenPipeError, ConnectionResetError):
            refused += 1
        finally:
            s.close()
    assert refused == 4, f'{4 - refused} connections beyond --per-ip-limit were served'

    # Another address (127.0.0.2 is loopback too) is served meanwhile.
    s = socket.socket()
    s.bind(('127.0.0.2', 0))
    s.settimeout(5)
    s.connect(('127.0.0.1', port))
    s.sendall(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
    data, _ = recv_all(s, 5)
    assert data.startswith(b'HTTP/1.1 200'), data
    s.close()

    # The held connections still work, and once they close the address is served again.
    for s in held:
        s.sendall(b'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
        assert s.recv(4096).startswith(b'HTTP/1.1 200')
        s.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            if Client(d.url).get('/healthz').status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, 'the address stayed blocked after its connections closed'
        time.sleep(0.1)
