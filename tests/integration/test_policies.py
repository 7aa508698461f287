"""Protection policies: their records and validation, the schedule's next runs, and the
scheduler taking real backups of real QEMU domains by itself: interval runs, exactly one
catch-up after the service was down, run now, a busy domain retried, verification by age,
and the overdue and last-success metrics."""
import datetime
import re
import time

import pytest


def iso(ms_or_s):
    return datetime.datetime.fromtimestamp(ms_or_s, datetime.timezone.utc)


def ts(s):
    """An RFC 3339 time of the API as seconds since the epoch (float)."""
    return datetime.datetime.fromisoformat(s.replace('Z', '+00:00')).timestamp()


def wait_for(what, cond, timeout=90, step=0.2):
    """Polls cond() until it answers something true; fails naming what after timeout."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f'{what}: not within {timeout}s (last: {last!r})')


def member(c, policy, dom):
    r = c.get(f'/v1/policies/{policy}')
    assert r.status == 200, r
    for m in r.json['members']:
        if m['domain'] == dom:
            return m
    return None


def completed_backups(c, dom):
    r = c.get(f'/v1/domains/{dom}/backups?state=completed&limit=500')
    assert r.status == 200, r
    return r.json['items']


def metric(c, name, **labels):
    text = c.get('/metrics').raw.decode()
    want = ','.join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r'^(\w+)\{([^}]*)\} (\S+)$', line)
        if m and m.group(1) == name and ','.join(sorted(m.group(2).split(','))) == want:
            return float(m.group(3))
    return None


def problem_field(r):
    return r.json['errors'][0].get('pointer')


# ------------------------------------------------------------------------------------------
# the schedule as Python computes it

def fnv1a(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xffffffff
    return h


NAMES = {n: i for i, n in enumerate(['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'])}
NAMES.update({n: i + 1 for i, n in enumerate(['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL',
                                              'AUG', 'SEP', 'OCT', 'NOV', 'DEC'])})


def cron_field(spec, lo, hi):
    spec = re.sub(r'[A-Za-z]{3}', lambda m: str(NAMES[m.group(0).upper()]), spec)
    vals = set()
    for item in spec.split(','):
        step = 1
        if '/' in item:
            item, step = item.split('/')
            step = int(step)
        if item in ('*', '?'):
            a, b = lo, hi
        elif '-' in item:
            a, b = item.split('-')
            a, b = int(a), int(b)
        else:
            a = int(item)
            b = hi if step != 1 else a
        vals.update(range(a, b + 1, step))
    return vals


def cron_next(expr, after):
    """The first fire strictly after `after` (seconds), by brute force over minutes."""
    mi, ho, dom, mo, dow = expr.split()
    M, H = cron_field(mi, 0, 59), cron_field(ho, 0, 23)
    D, MO = cron_field(dom, 1, 31), cron_field(mo, 1, 12)
    W = {d % 7 for d in cron_field(dow, 0, 7)}
    dom_star, dow_star = dom[0] in '*?', dow[0] in '*?'
    t = (int(after) // 60 + 1) * 60
    for _ in range(60 * 24 * 400):
        d = iso(t)
        if d.month in MO and d.hour in H and d.minute in M:
            dm, dw = d.day in D, (d.isoweekday() % 7) in W
            if (dm and dw) if (dom_star or dow_star) else (dm or dw):
                return t
        t += 60
    return None


def cron_period(expr, now):
    a = cron_next(expr, now)
    return cron_next(expr, a) - a


# ------------------------------------------------------------------------------------------
# records and validation (the test driver's domain "test": no backups, no QEMU needed)

def test_crud_validation_overlap_and_next_run(vv_test):
    c = vv_test.client
    body = {'name': 'nightly', 'domains': ['test'], 'schedule': '17 3 * * MON-FRI',
            'backup': {'type': 'auto', 'mode': 'push'}, 'retention': {'keep_daily': 7},
            'verify_after_days': 30}
    r = c.post('/v1/policies', json=body)
    assert r.status == 201, r
    assert r.headers['location'] == '/v1/policies/nightly'
    p = r.json
    assert p['schedule'] == '17 3 * * MON-FRI' and p['retention'] == {'keep_daily': 7}
    assert p['verify_after_days'] == 30 and p['enabled'] is True
    assert p['backup'] == {'type': 'auto', 'mode': 'push', 'target': None, 'disks': None,
                           'bandwidth': 0}

    # The next run: the first slot after the domain joined, moved by its offset.
    m = wait_for('the member', lambda: member(c, 'nightly', 'test'), timeout=20)
    joined = int(ts(m['joined_at']))
    now = time.time()
    period = cron_period('17 3 * * MON-FRI', now)
    assert p['period_seconds'] == period
    offset = fnv1a(f'nightly/{m["domain_uuid"]}') % min(cron_period('17 3 * * MON-FRI', 0) // 10,
                                                        300)
    want = cron_next('17 3 * * MON-FRI', joined - offset) + offset
    assert ts(m['next_run']) == want, (m, iso(want))
    assert m['last_run'] is None and m['overdue'] is False and m['protected_until'] is None

    # Bad input: 400 naming the field; nothing stored.
    for bad, pointer in [
            ({'schedule': '0 0 * FOO *'}, '/schedule'),
            ({'schedule': '0 0 30 2 *'}, '/schedule'),
            ({'schedule': '* * * *'}, '/schedule'),
            ({'schedule': '@every 5m'}, '/schedule'),
            ({'schedule': {'interval_seconds': 0}}, '/schedule/interval_seconds'),
            ({'schedule': {'every': 5}}, '/schedule/every'),
            ({'schedule': 5}, '/schedule'),
            ({'domains': []}, '/domains'),
            ({'domains': ['a b']}, '/domains/0'),
            ({'domains': ['x', 'x']}, '/domains/1'),
            ({'backup': {'mode': 'sideways'}}, '/backup/mode'),
            ({'backup': {'mode': 'pull'}}, '/backup/target'),
            ({'backup': {'disks': ['a/b']}}, '/backup/disks/0'),
            ({'retention': {'keep_forever': 1}}, '/retention/keep_forever'),
            ({'verify_after_days': -1}, '/verify_after_days'),
            ({'verify_after_days': 'soon'}, '/verify_after_days'),
            ({'enabled': 'yes'}, '/enabled'),
            ({'colour': 'red'}, '/colour'),
            ({'name': '.hidden'}, '/name')]:
        b = {'name': 'other', 'domains': ['nosuch'], 'schedule': '@daily'}
        b.update(bad)
        r = c.post('/v1/policies', json=b)
        assert r.status == 400 and problem_field(r) == pointer, (bad, r)
    assert c.get('/v1/policies/other').status == 404

    # A domain is in at most one policy: 409 naming the other, by pattern or literal name.
    r = c.post('/v1/policies', json={'name': 'all', 'domains': ['t*'], 'schedule': '@hourly'})
    assert r.status == 409 and "'nightly'" in r.json['detail'], r
    r = c.post('/v1/policies', json={'name': 'dup', 'domains': ['test'], 'schedule': '@hourly'})
    assert r.status == 409 and "'nightly'" in r.json['detail'], r
    # A pattern that matches nothing yet is fine; a later literal name it matches is not.
    r = c.post('/v1/policies', json={'name': 'future', 'domains': ['web-*'],
                                     'schedule': {'interval_seconds': 3600}})
    assert r.status == 201 and r.json['members'] == [], r
    r = c.post('/v1/policies', json={'name': 'web', 'domains': ['web-1'], 'schedule': '@daily'})
    assert r.status == 409 and "'future'" in r.json['detail'], r
    assert c.post('/v1/policies', json=body).status == 409  # the name is taken

    # List, paged.
    r = c.get('/v1/policies')
    assert r.status == 200 and [p['name'] for p in r.json['items']] == ['future', 'nightly']
    r = c.get('/v1/policies?limit=1')
    assert [p['name'] for p in r.json['items']] == ['future'] and r.json['next_page_token']
    r = c.get(f'/v1/policies?limit=1&page_token={r.json["next_page_token"]}')
    assert [p['name'] for p in r.json['items']] == ['nightly']
    assert r.json['next_page_token'] is None

    # Replace: the name stays, the definition changes; a disabled policy does not run.
    r = c.put('/v1/policies/nightly', json={'domains': ['test'], 'schedule': '@weekly',
                                            'enabled': False})
    assert r.status == 200 and r.json['schedule'] == '@weekly' and r.json['enabled'] is False
    assert r.json['members'][0]['next_run'] is None
    assert c.put('/v1/policies/nightly', json={'name': 'renamed', 'domains': ['test'],
                                               'schedule': '@daily'}).status == 400
    assert c.put('/v1/policies/nosuch', json={'domains': ['x'], 'schedule': '@daily'}).status == 404
    r = c.post('/v1/policies/nightly:run')
    assert r.status == 409, r

    assert c.delete('/v1/policies/nightly').status == 204
    assert c.get('/v1/policies/nightly').status == 404
    assert c.delete('/v1/policies/nightly').status == 404
    assert c.post('/v1/policies/nightly:run').status == 404


def test_failing_domain_is_overdue_in_the_metric(vv_test):
    """Backups of the test driver cannot start: every run is an error, the domain goes
    overdue after twice the period, and the metrics say so."""
    c = vv_test.client
    r = c.post('/v1/policies', json={'name': 'fast', 'domains': ['test'],
                                     'schedule': {'interval_seconds': 1}})
    assert r.status == 201, r
    wait_for('overdue=1 in the metric',
             lambda: metric(c, 'virtvault_domain_overdue', domain='test', policy='fast') == 1,
             timeout=30)
    m = member(c, 'fast', 'test')
    assert m['overdue'] is True and m['last_success'] is None
    assert m['last_run']['result'] == 'error' and m['last_run']['detail'], m
    assert metric(c, 'virtvault_policy_runs_total', policy='fast', result='error') >= 1
    assert metric(c, 'virtvault_domain_last_backup_success_timestamp_seconds',
                  domain='test') is None
    # Disabled: no longer counted as overdue.
    r = c.put('/v1/policies/fast', json={'domains': ['test'], 'schedule': {'interval_seconds': 1},
                                        'enabled': False})
    assert r.status == 200 and r.json['overdue'] is False


def test_scheduler_pass_histogram(vv_test):
    """virtvault_policy_tick_seconds counts the scheduler's passes: each change of a policy
    wakes it for one more; the buckets are cumulative and end at the count."""
    c = vv_test.client

    def sample(name, labels=''):
        text = c.get('/metrics').raw.decode()
        m = re.search(r'^%s%s (\S+)$' % (re.escape(name), re.escape(labels)), text, re.M)
        return float(m.group(1)) if m else None

    text = c.get('/metrics').raw.decode()
    assert '# TYPE virtvault_policy_tick_seconds histogram' in text
    assert '# TYPE virtvault_policy_tick_max_seconds gauge' in text
    before = sample('virtvault_policy_tick_seconds_count')
    assert before is not None
    r = c.post('/v1/policies', json={'name': 'ticks', 'domains': ['test'],
                                     'schedule': '@yearly'})
    assert r.status == 201, r
    after = wait_for('a pass after the change',
                     lambda: (n := sample('virtvault_policy_tick_seconds_count')) > before and n)
    text = c.get('/metrics').raw.decode()
    buckets = [(float(le), float(n)) for le, n in
               re.findall(r'^virtvault_policy_tick_seconds_bucket\{le="([^"+]+)"\} (\S+)$',
                          text, re.M)]
    assert len(buckets) == 12 and buckets == sorted(buckets), buckets
    inf = sample('virtvault_policy_tick_seconds_bucket', '{le="+Inf"}')
    count = sample('virtvault_policy_tick_seconds_count')
    assert count >= after and inf == count and buckets[-1][1] <= inf
    total = sample('virtvault_policy_tick_seconds_sum')
    longest = sample('virtvault_policy_tick_max_seconds')
    assert 0 < longest <= total < 60, (longest, total)


# ------------------------------------------------------------------------------------------
# real QEMU

def test_interval_policy_runs_by_itself_and_catches_up_once(vv_qemu, qemu_domain):
    c = vv_qemu.client
    dom = qemu_domain
    r = c.post('/v1/policies', json={'name': 'every5', 'domains': [dom],
                                     'schedule': {'interval_seconds': 5},
                                     'backup': {'type': 'auto'}})
    assert r.status == 201, r
    # Backups by itself: at least two, each recorded as the policy's run.
    wait_for('two backups', lambda: len(completed_backups(c, dom)) >= 2, timeout=120)
    m = wait_for('a settled run', lambda: (lambda m: m if m and m['last_run'] and
                                           m['last_run']['result'] == 'succeeded' else None)(
        member(c, 'every5', dom)), timeout=60)
    assert m['last_success'] and m['protected_until'] and m['overdue'] is False
    job = c.get(f'/v1/jobs/{m["last_run"]["job_id"]}').json
    assert job['kind'] == 'backup' and job['state'] == 'succeeded' and job['policy'] == 'every5'
    assert metric(c, 'virtvault_domain_last_backup_success_timestamp_seconds',
                  domain=dom) == pytest.approx(ts(m['last_success']), abs=0.01)
    assert metric(c, 'virtvault_policy_runs_total', policy='every5', result='succeeded') >= 2
    assert metric(c, 'virtvault_vault_bytes', domain=dom) > 0

    # Killed for three periods and more: one catch-up run at start, not one per missed slot.
    wait_for('no run in flight', lambda: member(c, 'every5', dom)['last_run']['result'] !=
             'running', timeout=60)
    vv_qemu.kill()
    down = time.time()
    while time.time() < down + 3 * 5 + 1:  # the outage itself is the condition
        time.sleep(0.5)
    started = time.time()
    vv_qemu.start()
    vv_qemu.wait_ready()
    c = vv_qemu.client
    m = wait_for('the catch-up run', lambda: (lambda m: m if m['last_run'] and
                                              ts(m['last_run']['started_at']) >= started - 1
                                              else None)(member(c, 'every5', dom)), timeout=60)
    assert m['last_run']['catch_up'] is True, m
    catch_up_at = ts(m['last_run']['started_at'])
    # The next regular run is an interval after the catch-up's start: until then, one backup.
    wait_for('the window to pass', lambda: time.time() > catch_up_at + 4.5, timeout=30)
    wait_for('the catch-up to end', lambda: member(c, 'every5', dom)['last_run']['result'] !=
             'running' or ts(member(c, 'every5', dom)['last_run']['started_at']) > catch_up_at,
             timeout=60)
    r = c.get(f'/v1/domains/{dom}/backups?limit=500')
    after = [b for b in r.json['items'] if started - 1 <= ts(b['started_at']) < catch_up_at + 4.5]
    if len(after) != 1:
        with open('/tmp/pol-debug.log', 'w') as f:
            f.write(repr(([(b['started_at'], b['job_id']) for b in after], iso(started),
                          m['last_run'])) + '\n' + vv_qemu.log())
    assert len(after) == 1, ([(b['started_at'], b['state']) for b in after], iso(started),
                             m['last_run'])
    # And the schedule goes on after it.
    wait_for('a regular run after the catch-up',
             lambda: (lambda m: m['last_run'] and ts(m['last_run']['started_at']) > catch_up_at
                      and m['last_run']['catch_up'] is False)(member(c, 'every5', dom)),
             timeout=60)
    assert c.delete('/v1/policies/every5').status == 204


def test_run_now_retries_a_busy_domain(vv_qemu, qemu_domain):
    c = vv_qemu.client
    dom = qemu_domain
    r = c.post('/v1/policies', json={'name': 'yearly', 'domains': [dom], 'schedule': '@yearly'})
    assert r.status == 201, r
    # The domain is busy: a pull backup waits for its reader.
    r = c.post(f'/v1/domains/{dom}/backups', json={'mode': 'pull', 'type': 'full'})
    assert r.status == 202, r
    pull = r.json
    assert c.get(f'/v1/jobs/{pull["job_id"]}').json['policy'] is None
    wait_for('the pull backup ready',
             lambda: c.get(f'/v1/domains/{dom}/backups/{pull["id"]}').json['state'] == 'ready',
             timeout=60)
    r = c.post('/v1/policies/yearly:run')
    assert r.status == 202, r
    m = wait_for('a busy run', lambda: (lambda m: m if m['last_run'] and
                                        m['last_run']['result'] == 'busy' else None)(
        member(c, 'yearly', dom)), timeout=30)
    assert m['last_run']['job_id'] is None
    assert metric(c, 'virtvault_policy_runs_total', policy='yearly', result='busy') >= 1
    # Still busy: tried again, not dropped.
    wait_for('a second busy try',
             lambda: metric(c, 'virtvault_policy_runs_total', policy='yearly',
                            result='busy') >= 2, timeout=30)
    assert c.post(f'/v1/domains/{dom}/backups/{pull["id"]}/finish').status == 200
    m = wait_for('the retried run to succeed', lambda: (lambda m: m if m['last_run'] and
                                                        m['last_run']['result'] == 'succeeded'
                                                        else None)(member(c, 'yearly', dom)),
                 timeout=120)
    assert m['last_run']['job_id'] and m['last_run']['catch_up'] is False
    # Run now was one run: the next is the schedule's (next 1 January, plus the offset).
    assert ts(m['next_run']) >= cron_next('0 0 1 1 *', time.time())


def test_verify_after_days_verifies_by_itself(vv_qemu, qemu_domain):
    c = vv_qemu.client
    dom = qemu_domain
    # verify_after_days 0: each backup is verified once, after it was taken.
    r = c.post('/v1/policies', json={'name': 'checked', 'domains': [dom],
                                     'schedule': {'interval_seconds': 3600},
                                     'verify_after_days': 0})
    assert r.status == 201 and r.json['verify_after_days'] == 0, r
    # The first run of an hourly interval comes within its offset (up to 5 min): run it now.
    assert c.post('/v1/policies/checked:run').status == 202
    b = wait_for('the first backup', lambda: completed_backups(c, dom), timeout=120)[0]
    v = wait_for('its verification', lambda: c.get(
        f'/v1/domains/{dom}/backups/{b["id"]}').json['verification'], timeout=120)
    assert v['ok'] is True, v
    first_check = v['checked_at']
    # A fractional number of days re-verifies once the last verification is that old.
    r = c.put('/v1/policies/checked', json={'domains': [dom],
                                           'schedule': {'interval_seconds': 3600},
                                           'verify_after_days': 3 / 86400})
    assert r.status == 200, r
    wait_for('a second verification', lambda: c.get(
        f'/v1/domains/{dom}/backups/{b["id"]}').json['verification']['checked_at'] !=
        first_check, timeout=120)
    jobs = c.get('/v1/jobs?limit=100').json['items']
    assert any(j['kind'] == 'verify' and j['domain'] == dom for j in jobs)


def test_cli_policies(vv_test):
    import json
    import os
    import subprocess
    cli = os.environ.get('VIRTVAULT_CLI', os.path.join(os.path.dirname(__file__), '..', '..',
                                                       'build', 'cli', 'virtvault'))

    def run(*args):
        return subprocess.run([cli, '--url', vv_test.url, '-o', 'json'] + list(args),
                              capture_output=True, text=True, timeout=60)

    body = json.dumps({'name': 'cli', 'domains': ['test'], 'schedule': '@daily',
                       'enabled': False})
    p = run('--body', body, 'policies', 'create')
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)['name'] == 'cli'
    p = run('policies', 'list')
    assert p.returncode == 0 and [x['name'] for x in json.loads(p.stdout)['items']] == ['cli']
    p = run('policies', 'show', 'cli')
    assert p.returncode == 0 and json.loads(p.stdout)['schedule'] == '@daily'
    p = run('policies', 'run', 'cli')  # disabled: a conflict
    assert p.returncode == 4, (p.returncode, p.stderr)
    p = run('policies', 'delete', 'cli')
    assert p.returncode == 0, p.stderr
    assert run('policies', 'show', 'cli').returncode == 3


def test_a_new_domain_joins_the_pattern(vv_qemu, sandbox):
    import uuid
    c = vv_qemu.client
    prefix = 'vvt-' + uuid.uuid4().hex[:6]
    r = c.post('/v1/policies', json={'name': 'pattern', 'domains': [prefix + '-*'],
                                     'schedule': '@yearly'})
    assert r.status == 201 and r.json['members'] == [], r
    name = prefix + '-new'
    sandbox.domain_create(name, start=False)
    try:
        m = wait_for('the new domain to join', lambda: member(c, 'pattern', name), timeout=30)
        assert m['next_run'] and m['last_run'] is None
        # It is the pattern's: another policy naming it is refused, naming this one.
        r = c.post('/v1/policies', json={'name': 'other', 'domains': [name],
                                         'schedule': '@daily'})
        assert r.status == 409 and "'pattern'" in r.json['detail'], r
    finally:
        sandbox.domain_remove(name)


def test_the_retention_is_applied_after_each_policy_backup(vv_qemu, qemu_domain):
    """A policy's retention prunes the domain's backups after its runs: with keep_last 1 the
    older backups go (merged where the kept one needs them), and the chain stays whole."""
    c = vv_qemu.client
    dom = qemu_domain
    r = c.post('/v1/policies', json={'name': 'keep1', 'domains': [dom],
                                     'schedule': {'interval_seconds': 5},
                                     'backup': {'type': 'auto'},
                                     'retention': {'keep_last': 1}})
    assert r.status == 201, r

    def succeeded(kind):
        r = c.get(f'/v1/jobs?domain={dom}&limit=1000')
        assert r.status == 200, r
        return [j for j in r.json['items'] if j['kind'] == kind and j['state'] == 'succeeded']

    # A prune after each of three backups: the later ones had older backups to remove.
    wait_for('three backups, each followed by a prune',
             lambda: len(succeeded('backup')) >= 3 and len(succeeded('prune')) >= 3, timeout=150)
    assert c.put('/v1/policies/keep1', json={'domains': [dom], 'schedule': {'interval_seconds': 5},
                                            'enabled': False}).status == 200
    wait_for('no job of the domain running', lambda: not [
        j for j in c.get(f'/v1/jobs?domain={dom}&limit=1000').json['items']
        if j['state'] in ('queued', 'running')], timeout=120)
    kept = completed_backups(c, dom)
    # keep_last 1 after each run: at most the newest and one taken after the last prune.
    assert 1 <= len(kept) <= 2, [(b['id'], b['started_at']) for b in kept]
    ids = {b['id'] for b in kept}
    for b in kept:
        assert b['parent_id'] is None or b['parent_id'] in ids, b
    oldest = min(kept, key=lambda b: b['started_at'])
    assert oldest['type'] == 'full' and oldest['parent_id'] is None, oldest
    r = c.post(f'/v1/domains/{dom}/backups/{oldest["id"]}/verify')
    assert r.status == 202, r
    assert c.wait_job(r.json['id'])['state'] == 'succeeded'
    assert c.delete('/v1/policies/keep1').status == 204
