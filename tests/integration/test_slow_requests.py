"""Slow requests run off the HTTP threads (issue 14, point 8).

A handler that can block for seconds (`finish`, `?refresh=true`, a reconcile,
a revert, ...) suspends its connection and runs on a worker; the HTTP threads
keep answering. To make requests that are really slow, and slow for exactly as
long as the test wants, the test stops the domain's QEMU with SIGSTOP: every
reconcile then waits for QEMU's monitor (the first one) or for the domain's
checkpoint lock (the others) until the test sends SIGCONT.
"""
import json
import re
import select
import signal
import socket
import time

import pytest

from conftest import SANITIZER_MARKS, Daemon  # noqa: F401  (the fixtures come from conftest)
from helpers import raw_request, read_answer

HEALTHZ_BUDGET = 0.050  # seconds, the bound for /healthz under slow requests



def probe(port, path='/healthz', timeout=3.0):
    """Seconds until the answer to GET path on a new connection, and its body."""
    t0 = time.monotonic()
    try:
        status, body = read_answer(raw_request(port, 'GET', path), timeout)
    except (socket.timeout, TimeoutError):
        pytest.fail(f'GET {path} got no answer within {timeout} s while slow requests ran')
    assert status == 200, (path, status, body)
    return time.monotonic() - t0, body


def deferred_counts(port):
    _, body = probe(port, '/metrics')
    text = body.decode()
    counts = {}
    for state in ('running', 'queued'):
        m = re.search(r'^virtvault_http_deferred_requests\{state="%s"\} (\d+)$' % state, text,
                      re.M)
        assert m, 'no virtvault_http_deferred_requests gauge in /metrics'
        counts[state] = int(m.group(1))
    return counts


def wait_deferred(port, running, queued, timeout=60):
    """Waits until running requests are on workers and queued ones wait for one."""
    want = {'running': running, 'queued': queued}
    deadline = time.monotonic() + timeout
    while True:
        probe(port)  # the HTTP threads answer while the slow requests arrive
        counts = deferred_counts(port)
        if counts == want:
            return
        assert time.monotonic() < deadline, f'slow requests in flight: {counts}, not {want}'
        time.sleep(0.05)


def slow_requests(port, dom, n):
    """n requests that each need a reconcile of dom: one explicit reconcile (a second would be
    refused 409 while it runs), then reads with ?refresh=true."""
    reads = [('GET', f'/v1/domains/{dom}/checkpoints?refresh=true', None),
             ('GET', f'/v1/domains/{dom}/checkpoints/cp1?refresh=true', None)]
    socks = [raw_request(port, 'POST', f'/v1/domains/{dom}/checkpoints:reconcile', {})]
    return socks + [raw_request(port, *reads[i % 2]) for i in range(n - 1)]


def unanswered(socks):
    readable, _, _ = select.select(socks, [], [], 0)
    return not readable



def test_healthz_answers_while_eight_slow_requests_run(vv_qemu, qemu_domain, held_qemu):
    stop, cont = held_qemu
    port = vv_qemu.port
    baseline = max(probe(port)[0] for _ in range(20))
    budget = max(HEALTHZ_BUDGET, 3 * baseline)  # a loaded machine's own latency, loosely

    stop()
    socks = slow_requests(port, qemu_domain, 8)
    try:
        wait_deferred(port, running=8, queued=0)
        latencies = [probe(port)[0] for _ in range(20)]
        assert unanswered(socks), 'a slow request answered while QEMU was stopped'
        assert max(latencies) < budget, \
            f'/healthz took up to {max(latencies) * 1000:.1f} ms (budget {budget * 1000:.1f} ms)'
    finally:
        cont()
    for s in socks:
        status, body = read_answer(s, 60)
        assert status == 200, body
    # A worker counts itself free just after it hands its answer over: wait for the gauge.
    wait_deferred(port, running=0, queued=0, timeout=30)


def test_sigterm_answers_every_suspended_request(vv_qemu, qemu_domain, held_qemu):
    stop, cont = held_qemu
    """Waiting ones get 503 at once, running ones their answer or 503 after the grace."""
    port, d = vv_qemu.port, vv_qemu
    stop()
    socks = slow_requests(port, qemu_domain, 10)  # 8 workers: 8 run, 2 wait
    wait_deferred(port, running=8, queued=2)
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    answers = {}
    pending = list(socks)
    while pending:
        readable, _, _ = select.select(pending, [], [], 30)
        assert readable, f'{len(pending)} slow requests got no answer after SIGTERM'
        for s in readable:
            answers[s] = (time.monotonic() - t0,) + read_answer(s, 5)
            pending.remove(s)
    statuses = sorted(a[1] for a in answers.values())
    assert statuses == [503] * 10, statuses
    for elapsed, status, body in answers.values():
        assert json.loads(body)['code'] == 'not_ready'
    early = sorted(a[0] for a in answers.values())[:2]
    assert max(early) < 5, f'the two waiting requests were answered after {early} s'
    # The work still runs in libvirt: the process ends once it does.
    cont()
    assert d.proc.wait(timeout=60) == 0
    log = d.log()
    assert not any(mark in log for mark in SANITIZER_MARKS), log[-8000:]
    assert 'stopped' in log
