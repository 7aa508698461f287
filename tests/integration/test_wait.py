"""Waiting without polling (issue 16, point 2).

`GET /v1/jobs/{id}?wait=SECONDS` answers as soon as the job ends or the time passes;
`POST ...?wait=SECONDS` on a job-starting route answers 200 with the ended job when it ends in
time, else 202 as without it. A waiting request is suspended and holds no thread, so hundreds
of them leave the API answering.

Long jobs come from real QEMU: a pull backup stays `ready` (its job running) until finished,
and a restore throttled with `bandwidth` takes seconds that the test does not have to guess.
Times are compared with the job's own `finished_at`, never with fixed sleeps.
"""
import datetime
import os
import re
import select
import signal
import time

import pytest

from conftest import Daemon
from helpers import MiB, prefilled_domain, problem, raw_request, read_raw, wait_for

WAITERS = 500
HEALTHZ_BUDGET = 0.050  # seconds: /healthz while the waiters wait
END_TO_ANSWER = 0.5     # seconds: a waiter's answer after the job's recorded end


def ts(rfc3339):
    """An RFC 3339 UTC time with milliseconds as seconds since the epoch."""
    return datetime.datetime.strptime(rfc3339, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc).timestamp()



def healthz_seconds(port):
    t0 = time.monotonic()
    status, _ = read_raw(raw_request(port, 'GET', '/healthz'), 5)
    assert status == 200
    return time.monotonic() - t0


def waiting_requests(c):
    text = c.get('/metrics').text
    m = re.search(r'^virtvault_http_waiting_requests (\d+)$', text, re.M)
    assert m, 'no virtvault_http_waiting_requests gauge in /metrics'
    return int(m.group(1))


def pull_ready(c, dom):
    """A pull backup read by a client, ready: its job runs until it is finished."""
    r = c.post(f'/v1/domains/{dom}/backups', json={'mode': 'pull', 'type': 'full'})
    assert r.status == 202, r
    b = r.json
    wait_for('the pull backup to be ready',
             lambda: c.get(f'/v1/domains/{dom}/backups/{b["id"]}').json['state'] == 'ready',
             timeout=60, interval=0.1)
    assert c.get(f'/v1/jobs/{b["job_id"]}').json['state'] == 'running'
    return b


@pytest.fixture
def domain(sandbox):
    with sandbox.domain(size='64M') as name:
        yield name


# ------------------------------------------------------------------------------------------
# the parameter

@pytest.mark.parametrize('bad', ['-1', '301', 'abc', '1.5', '', '+5', '1e2', '%201'])
def test_a_wait_that_is_not_0_to_300_seconds_is_refused_naming_wait(vv_test, bad):
    c = vv_test.client
    p = problem(c.get(f'/v1/jobs/0123456789abcdef?wait={bad}'), 400, 'invalid_request')
    assert 'wait' in p['detail'], p
    # Refused before anything starts: no job, no backup.
    p = problem(c.post(f'/v1/domains/test/backups?wait={bad}', json={}), 400,
                'invalid_request')
    assert 'wait' in p['detail'], p
    p = problem(c.post(f'/v1/domains/test/snapshots?wait={bad}', json={'name': 'w'}), 400)
    assert 'wait' in p['detail'], p
    assert c.get('/v1/domains/test/snapshots/w').status == 404
    assert c.get('/v1/jobs').json['items'] == []


@pytest.mark.parametrize('good', ['0', '300', '007'])
def test_a_wait_from_0_to_300_is_taken(vv_test, good):
    # No such job: nothing to wait for, answered at once.
    t0 = time.monotonic()
    problem(vv_test.client.get(f'/v1/jobs/0123456789abcdef?wait={good}'), 404, 'not_found')
    assert time.monotonic() - t0 < 1


# ------------------------------------------------------------------------------------------
# against real jobs

def test_get_wait_answers_within_half_a_second_of_the_jobs_end(vv_qemu, sandbox):
    c = vv_qemu.client
    with prefilled_domain(sandbox, '128M', '96M') as dom:
        r = c.post(f'/v1/domains/{dom}/backups?wait=120', json={'type': 'full'})
        assert r.status == 200, r
        full = r.json
        for attempt in range(3):
            # Throttled: the restore takes a few seconds, its end known only to the service.
            target = os.path.join(vv_qemu.vault_dir, 'restore', f'w{attempt}')
            r = c.post(f'/v1/domains/{dom}/backups/{full["result"]["backup_id"]}/restore',
                       json={'target_dir': target, 'format': 'raw', 'bandwidth': 32 * MiB})
            assert r.status == 202, r
            job_id = r.json['id']
            asked = time.time()
            r = c.get(f'/v1/jobs/{job_id}?wait=120')
            answered = time.time()
            assert r.status == 200, r
            job = r.json
            assert job['state'] == 'succeeded', job
            ended = ts(job['finished_at'])
            if ended - asked < 0.5:
                continue  # ended before the wait began: not a measurement; try again
            lag = answered - ended
            assert -0.01 <= lag <= END_TO_ANSWER, f'answered {lag:.3f} s after the job ended'
            assert job == c.get(f'/v1/jobs/{job_id}').json
            return
        pytest.fail('the throttled restore never outlasted the start of the wait')


def test_post_backup_with_wait_answers_the_ended_job(vv_qemu, domain):
    c = vv_qemu.client
    r = c.post(f'/v1/domains/{domain}/backups?wait=60', json={'type': 'full'})
    assert r.status == 200, r
    job = r.json
    assert job['kind'] == 'backup' and job['state'] == 'succeeded', job
    assert r.headers['location'] == f'/v1/jobs/{job["id"]}'
    assert job == c.get(f'/v1/jobs/{job["id"]}').json
    b = c.get(f'/v1/domains/{domain}/backups/{job["result"]["backup_id"]}').json
    assert b['state'] == 'completed' and b['job_id'] == job['id'], b

    # Verify starts a job too.
    r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/verify?wait=60')
    assert r.status == 200, r
    assert r.json['kind'] == 'verify' and r.json['state'] == 'succeeded', r.json
    assert r.json['result']['ok'] is True, r.json
    assert r.headers['location'] == f'/v1/jobs/{r.json["id"]}'


def test_post_snapshot_with_wait_answers_the_ended_job(vv_qemu, domain):
    """A snapshot with memory is taken by a job that a worker starts (the request is deferred
    first); the wait for the job then suspends the request anew, off the worker."""
    c = vv_qemu.client
    r = c.post(f'/v1/domains/{domain}/snapshots?wait=60', json={'name': 's1'})
    assert r.status == 200, r
    job = r.json
    assert job['kind'] == 'snapshot_create' and job['state'] == 'succeeded', job
    assert job['result'] == {'snapshot': 's1'}, job
    assert r.headers['location'] == f'/v1/jobs/{job["id"]}'
    assert job == c.get(f'/v1/jobs/{job["id"]}').json
    assert c.get(f'/v1/domains/{domain}/snapshots/s1').json['memory']['location'] == 'internal'


def test_a_wait_shorter_than_the_job_answers_it_running(vv_qemu, domain):
    c = vv_qemu.client
    # POST: the time passes first, so the answer is the 202 of no wait.
    t0 = time.monotonic()
    r = c.post(f'/v1/domains/{domain}/backups?wait=1', json={'mode': 'pull', 'type': 'full'})
    took = time.monotonic() - t0
    assert r.status == 202, r
    assert r.json['mode'] == 'pull' and r.json['state'] in ('running', 'ready'), r.json
    assert r.headers['location'] == f'/v1/jobs/{r.json["job_id"]}'
    assert 0.95 <= took < 1.5, f'answered after {took:.2f} s'
    b = r.json
    wait_for('the pull backup to be ready',
             lambda: c.get(f'/v1/domains/{domain}/backups/{b["id"]}').json['state'] == 'ready',
             timeout=60, interval=0.1)

    # GET: the job as it stands after the second.
    t0 = time.monotonic()
    r = c.get(f'/v1/jobs/{b["job_id"]}?wait=1')
    took = time.monotonic() - t0
    assert r.status == 200 and r.json['state'] == 'running', r
    assert 0.95 <= took < 1.5, f'answered after {took:.2f} s'

    # A wait that the end cuts short: finished while a waiter waits.
    waiter = raw_request(vv_qemu.port, 'GET', f'/v1/jobs/{b["job_id"]}?wait=60')
    wait_for('the waiter to wait', lambda: waiting_requests(c) == 1, interval=0.05)
    r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/finish')
    assert r.status == 200, r
    status, data = read_raw(waiter, 10)
    assert status == 200 and b'"state":"succeeded"' in data, data
    assert waiting_requests(c) == 0


def test_500_waiters_leave_healthz_answering(sandbox, domain):
    d = Daemon('qemu:///system', args=['--conn-limit', '1000', '--per-ip-limit', '1000']).start()
    try:
        d.wait_ready()
        c = d.client
        b = pull_ready(c, domain)
        path = f'/v1/jobs/{b["job_id"]}?wait=120'
        waiters = [raw_request(d.port, 'GET', path) for _ in range(WAITERS)]
        wait_for(f'{WAITERS} waiters', lambda: waiting_requests(c) == WAITERS, interval=0.1)

        took = [healthz_seconds(d.port) for _ in range(20)]
        assert max(took) < HEALTHZ_BUDGET, \
            f'/healthz took up to {max(took) * 1000:.1f} ms with {WAITERS} waiters'
        # The API answers more than /healthz meanwhile.
        assert c.get(f'/v1/jobs/{b["job_id"]}').json['state'] == 'running'
        readable, _, _ = select.select(waiters, [], [], 0)
        assert not readable, 'a waiter was answered before the job ended'

        r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/finish')
        assert r.status == 200, r
        job = c.get(f'/v1/jobs/{b["job_id"]}').json
        assert job['state'] == 'succeeded', job
        ended = ts(job['finished_at'])
        for s in waiters:
            status, data = read_raw(s, 30)
            assert status == 200 and b'"state":"succeeded"' in data, data[:300]
        lag = time.time() - ended
        assert lag < 5, f'the last of {WAITERS} waiters was answered {lag:.2f} s after the end'
        assert waiting_requests(c) == 0
    finally:
        code = d.stop()
        reports = d.sanitizer_reports
        d.cleanup()
    assert not reports, 'sanitizer report from virtvaultd:\n' + reports[0][-8000:]
    assert code == 0


def test_a_waiter_whose_client_went_away_leaks_nothing(vv_qemu, domain):
    """Clients hang up while their requests wait: some until their time passes, the others
    until the job ends. The fixture's stop fails the test on any sanitizer report (run it
    under build-asan)."""
    c = vv_qemu.client
    b = pull_ready(c, domain)
    short = [raw_request(vv_qemu.port, 'GET', f'/v1/jobs/{b["job_id"]}?wait=1') for _ in range(5)]
    ends = [raw_request(vv_qemu.port, 'GET', f'/v1/jobs/{b["job_id"]}?wait=120') for _ in range(5)]
    wait_for('10 waiters', lambda: waiting_requests(c) == 10, interval=0.05)
    for s in short + ends:
        s.close()
    # The short ones' time passes: they are answered into closed sockets and forgotten.
    wait_for('the short waits to pass', lambda: waiting_requests(c) == 5, interval=0.1)
    r = c.post(f'/v1/domains/{domain}/backups/{b["id"]}/finish')
    assert r.status == 200, r
    wait_for('the job end to release the waiters', lambda: waiting_requests(c) == 0,
             interval=0.05)



def test_waiters_are_answered_at_once_when_the_daemon_stops(make_daemon, domain):
    """A stop answers suspended waiters with the job as it stands, without the grace that slow
    requests get. The pull backup ends by its idle timeout, so the stop can end too."""
    d = make_daemon('qemu:///system', args=['--pull-idle-timeout', '6']).start()
    d.wait_ready()
    c = d.client
    b = pull_ready(c, domain)
    gone = [raw_request(d.port, 'GET', f'/v1/jobs/{b["job_id"]}?wait=120') for _ in range(5)]
    kept = raw_request(d.port, 'GET', f'/v1/jobs/{b["job_id"]}?wait=120')
    wait_for('6 waiters', lambda: waiting_requests(c) == 6, interval=0.05)
    for s in gone:
        s.close()
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    status, data = read_raw(kept, 5)
    took = time.monotonic() - t0
    assert status == 200 and b'"state":"running"' in data, data[:300]
    assert took < 2, f'the waiter was answered {took:.1f} s after SIGTERM'
    assert d.stop() == 0  # the pull's idle timeout ends its job, then the daemon


def test_a_wait_outlasts_the_connection_timeout(make_daemon, domain):
    """--conn-timeout bounds idle and slow connections; a suspended waiter is neither."""
    d = make_daemon('qemu:///system', args=['--conn-timeout', '2']).start()
    d.wait_ready()
    c = d.client
    b = pull_ready(c, domain)
    t0 = time.monotonic()
    status, data = read_raw(raw_request(d.port, 'GET', f'/v1/jobs/{b["job_id"]}?wait=4'), 10)
    took = time.monotonic() - t0
    assert status == 200 and b'"state":"running"' in data, data[:300]
    assert 3.95 <= took < 4.5, f'answered after {took:.2f} s'
    assert c.post(f'/v1/domains/{domain}/backups/{b["id"]}/finish').status == 200
