"""POST /v1/retention:simulate: the prune rule on a table written from the rules and on
1,000 random time lists checked against a second implementation written here."""
import datetime
import random

import pytest

OPTIONS = ['keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly']


def bucket(option, i, t):
    if option == 'keep_last':
        return i
    if option == 'keep_weekly':
        y, w, _ = t.isocalendar()
        return (y, w)
    return {'keep_hourly': (t.year, t.month, t.day, t.hour),
            'keep_daily': (t.year, t.month, t.day),
            'keep_monthly': (t.year, t.month),
            'keep_yearly': (t.year,)}[option]


def reference(retention, times):
    """The rule as the issue states it, written independently of the daemon."""
    parsed = [datetime.datetime.strptime(s, '%Y-%m-%dT%H:%M:%SZ') for s in times]
    if not any(retention.get(o, 0) for o in OPTIONS):
        return list(times), []
    order = sorted(range(len(times)), key=lambda i: (-parsed[i].timestamp(), i))
    mark = {}
    for option in OPTIONS:
        n = retention.get(option, 0)
        if not n:
            continue
        covered = {bucket(option, i, parsed[i]) for i in order if mark.get(i) == 'keep'}
        selected = set()
        for i in order:
            b = bucket(option, i, parsed[i])
            if i in mark or b in covered:
                continue
            if b in selected:
                mark[i] = 'remove'
                continue
            if len(selected) >= n:
                break
            selected.add(b)
            mark[i] = 'keep'
    keep = [times[i] for i in range(len(times)) if mark.get(i) == 'keep']
    remove = [times[i] for i in range(len(times)) if mark.get(i) != 'keep']
    return keep, remove


TABLE = [
    # (retention, times newest first as given, indexes kept)
    ({}, ['2026-01-01T00:00:00Z', '2025-01-01T00:00:00Z'], [0, 1]),
    ({'keep_last': 2}, ['2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z'],
     [1, 2]),
    ({'keep_hourly': 2}, ['2026-05-05T10:50:00Z', '2026-05-05T10:10:00Z',
                          '2026-05-05T09:30:00Z', '2026-05-05T08:00:00Z'], [0, 2]),
    ({'keep_last': 1, 'keep_hourly': 1}, ['2026-05-05T10:50:00Z', '2026-05-05T10:10:00Z',
                                          '2026-05-05T09:30:00Z'], [0, 2]),
    ({'keep_daily': 2}, ['2026-01-02T00:30:00Z', '2026-01-01T23:59:59Z',
                         '2026-01-01T12:00:00Z', '2025-12-31T23:00:00Z'], [0, 1]),
    ({'keep_weekly': 2}, ['2021-01-04T00:00:00Z', '2021-01-03T23:59:59Z',
                          '2020-12-31T12:00:00Z', '2020-12-27T12:00:00Z'], [0, 1]),
    ({'keep_monthly': 2}, ['2026-03-01T00:00:00Z', '2026-02-28T23:59:59Z',
                           '2026-02-01T00:00:00Z', '2026-01-31T00:00:00Z'], [0, 1]),
    ({'keep_yearly': 1}, ['2027-01-01T00:00:00Z', '2026-12-31T23:59:59Z'], [0]),
    ({'keep_daily': 1, 'keep_monthly': 2},
     ['2026-03-02T10:00:00Z', '2026-03-02T09:00:00Z', '2026-03-01T09:00:00Z',
      '2026-02-10T00:00:00Z', '2026-02-01T00:00:00Z', '2026-01-01T00:00:00Z'], [0, 3, 5]),
]


def simulate(c, retention, times):
    r = c.post('/v1/retention:simulate', {'retention': retention, 'times': times})
    assert r.status == 200, r.json
    return r.json['keep'], r.json['remove']


@pytest.mark.parametrize('retention,times,kept', TABLE)
def test_simulate_table(vv_test, retention, times, kept):
    keep, remove = simulate(vv_test.client, retention, times)
    assert keep == [times[i] for i in kept]
    assert remove == [t for i, t in enumerate(times) if i not in kept]
    assert (keep, remove) == reference(retention, times)


def test_simulate_random_against_reference(vv_test):
    rng = random.Random(15)
    start = datetime.datetime(2018, 1, 1).timestamp()
    for _ in range(1000):
        span = rng.choice([3 * 3600, 3 * 86400, 60 * 86400, 4 * 365 * 86400])
        n = rng.randint(0, 30)
        times = [datetime.datetime.utcfromtimestamp(start + rng.randint(0, span))
                 .strftime('%Y-%m-%dT%H:%M:%SZ') for _ in range(n)]
        retention = {o: rng.randint(0, 4) for o in OPTIONS if rng.random() < 0.5}
        got = simulate(vv_test.client, retention, times)
        assert got == reference(retention, times), (retention, times)


@pytest.mark.parametrize('body,field,pointer', [
    ({'retention': {'keep_dayly': 1}, 'times': []}, 'keep_dayly', '/retention/keep_dayly'),
    ({'retention': {'keep_last': -1}, 'times': []}, 'keep_last', '/retention/keep_last'),
    ({'retention': {'keep_last': 1.5}, 'times': []}, 'keep_last', '/retention/keep_last'),
    ({'retention': {'keep_last': '2'}, 'times': []}, 'keep_last', '/retention/keep_last'),
    ({'retention': {}, 'times': ['yesterday']}, 'times[0]', '/times/0'),
    ({'retention': {}, 'times': 3}, 'times', '/times'),
    ({'retention': {}}, 'times', '/times'),
    ({'retention': {}, 'times': [], 'extra': 1}, 'extra', '/extra'),
])
def test_simulate_refuses_bad_bodies(vv_test, body, field, pointer):
    r = vv_test.client.post('/v1/retention:simulate', body)
    assert r.status == 400 and r.content_type.startswith('application/problem+json')
    assert r.json['code'] == 'invalid_request'
    assert field in r.json['detail'], r.json
    assert r.json['errors'][0]['pointer'] == pointer, r.json
