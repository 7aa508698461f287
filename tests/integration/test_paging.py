"""Paging, the same on every list: `limit` and `page_token` in, `next_page_token` out.

A page token holds the position of the last item answered (keyset paging), never an offset,
so that paging stays exact while new items are added: every item that existed when paging
began is answered exactly once. Bad limits and tokens answer 400 naming the parameter, with
the same words on every list.
"""
import threading
import time
import urllib.parse

from helpers import problem

LISTS = ('/v1/domains', '/v1/domains/test/snapshots', '/v1/domains/test/checkpoints',
         '/v1/domains/test/backups', '/v1/jobs', '/v1/audit')
LIMIT_WORDS = 'must be a number from 1 to 1000'
TOKEN_WORDS = 'is not one this service gave out'


def page_url(path, limit=None, token=None, **query):
    q = dict(query)
    if limit is not None:
        q['limit'] = limit
    if token is not None:
        q['page_token'] = token
    return path + ('?' + urllib.parse.urlencode(q) if q else '')


def all_pages(c, path, limit, between=None, **query):
    """Every page of path, in order, as a list of pages (each a list of items)."""
    pages, token = [], None
    while True:
        r = c.get(page_url(path, limit, token, **query))
        assert r.status == 200, r
        assert len(r.json['items']) <= limit
        pages.append(r.json['items'])
        token = r.json['next_page_token']
        if token is None:
            return pages
        assert r.json['items'], 'a page before the last is never empty'
        if between:
            between()


def make_failed_jobs(c, n):
    """n jobs, fast: with a checkpoint on the test driver's domain a full snapshot's job fails
    at once ("cannot create snapshot while checkpoint exists"), and still is a job."""
    ids = []
    for _ in range(n):
        deadline = time.monotonic() + 30
        while True:
            r = c.post('/v1/domains/test/snapshots?wait=30', json={}, validate=False)
            # The answer comes when the job ends, a moment before the domain is free again.
            if r.status != 409 or time.monotonic() > deadline:
                break
            assert r.json['code'] == 'domain_busy', r
        assert r.status in (200, 202), r
        assert r.json['state'] == 'failed', r.json
        ids.append(r.json['id'])
    return ids


def test_paging_through_1200_jobs_returns_each_once_while_new_ones_are_added(vv_test):
    c = vv_test.client
    assert c.post('/v1/domains/test/checkpoints', json={'name': 'blocker'}).status == 201
    before = make_failed_jobs(c, 1200)
    assert len(set(before)) == 1200

    added, cond, stop = [], threading.Condition(), threading.Event()

    def adder():
        while not stop.is_set():
            ids = make_failed_jobs(c, 1)
            with cond:
                added.extend(ids)
                cond.notify_all()

    def wait_for_one_more():
        """Between two pages at least one new job is added (no fixed sleep: wait for it)."""
        with cond:
            n = len(added)
            assert cond.wait_for(lambda: len(added) > n, timeout=60), 'the adder made nothing'

    t = threading.Thread(target=adder)
    t.start()
    try:
        pages = all_pages(c, '/v1/jobs', 100, between=wait_for_one_more)
    finally:
        stop.set()
        t.join(120)
    seen = [j['id'] for page in pages for j in page]
    assert len(seen) == len(set(seen)), 'a job was answered twice'
    old = [i for i in seen if i in set(before)]
    assert sorted(old) == sorted(before), 'each job that existed is answered exactly once'
    assert old == list(reversed(before)), 'newest first'
    assert len(added) >= len(pages) - 1 >= 11
    # The deprecated cursor still pages the same way.
    first = c.get('/v1/jobs?limit=5').json
    second = c.get(f"/v1/jobs?limit=5&cursor={first['next_cursor']}").json
    by_token = c.get(f"/v1/jobs?limit=5&page_token={first['next_page_token']}").json
    assert second['items'] == by_token['items'] and len(second['items']) == 5
    # A filter pages the same way: the token holds the position, not the filter.
    failed = [j['id'] for p in all_pages(c, '/v1/jobs', 250, state='failed') for j in p]
    assert len(failed) == len(set(failed)) == len(before) + len(added)


def check_pages(c, path, names):
    """path pages into names, in order, at every limit; the whole list fits one page."""
    whole = c.get(path).json
    assert [i.get('name', i.get('id')) for i in whole['items']] == names, path
    assert whole['next_page_token'] is None, path
    for limit in (1, 2, 1000):
        pages = all_pages(c, path, limit)
        got = [i.get('name', i.get('id')) for p in pages for i in p]
        assert got == names, (path, limit, pages)
        assert len(pages) == max(1, -(-len(names) // limit)), (path, limit)


def test_every_list_honours_limit_and_page_token(vv_test):
    c = vv_test.client
    check_pages(c, '/v1/domains', ['test'])
    check_pages(c, '/v1/domains/test/backups', [])

    # Snapshots (the test driver keeps snapshots and checkpoints apart: one, then the other).
    for i in range(3):
        r = c.post('/v1/domains/test/snapshots?wait=30', json={'name': f's{i}'})
        assert r.status in (200, 202) and r.json['state'] == 'succeeded', r.json
    check_pages(c, '/v1/domains/test/snapshots', ['s0', 's1', 's2'])
    roots = all_pages(c, '/v1/domains/test/snapshots', 1, roots='false')
    assert [i['name'] for p in roots for i in p] == ['s1', 's2']
    # The tree is never paged.
    tree = c.get('/v1/domains/test/snapshots?view=tree').json
    assert tree['next_page_token'] is None and [n['name'] for n in tree['items']] == ['s0']
    token = c.get('/v1/domains/test/snapshots?limit=1').json['next_page_token']
    for q in ('limit=1', f'page_token={token}'):
        p = problem(c.get(f'/v1/domains/test/snapshots?view=tree&{q}'), 400, 'invalid_request')
        assert p['errors'][0]['parameter'] == q.split('=')[0], p
    r = c.request('DELETE', '/v1/domains/test/snapshots/s0?children=true&wait=30')
    assert r.status in (200, 202, 204), r
    if r.status == 202:
        c.wait_job(r.json['id'])

    for i in range(5):
        assert c.post('/v1/domains/test/checkpoints', json={'name': f'c{i}'}).status == 201
    check_pages(c, '/v1/domains/test/checkpoints', ['c0', 'c1', 'c2', 'c3', 'c4'])
    # refresh=true reads on a worker: the paging parameters go with it.
    got = [i['name'] for p in all_pages(c, '/v1/domains/test/checkpoints', 2, refresh='true')
           for i in p]
    assert got == ['c0', 'c1', 'c2', 'c3', 'c4']
    # Filters page too; the token is tied to the order, so the same filter goes with each page.
    leaves = all_pages(c, '/v1/domains/test/checkpoints', 1, leaves='false')
    assert [i['name'] for p in leaves for i in p] == ['c0', 'c1', 'c2', 'c3']

    # Inserts while paging a list ordered by time: what existed comes once, in order.
    first = c.get('/v1/domains/test/checkpoints?limit=2').json
    assert [i['name'] for i in first['items']] == ['c0', 'c1']
    assert c.post('/v1/domains/test/checkpoints', json={'name': 'c5'}).status == 201
    r = c.get(page_url('/v1/domains/test/checkpoints', 2, first['next_page_token'])).json
    assert [i['name'] for i in r['items']] == ['c2', 'c3']
    r = c.get(page_url('/v1/domains/test/checkpoints', 2, r['next_page_token'])).json
    assert [i['name'] for i in r['items']] == ['c4', 'c5'] and r['next_page_token'] is None

    # Jobs (snapshots made and deleted) and audit (every write), newest first.
    whole = [j['id'] for j in c.get('/v1/jobs').json['items']]
    assert [j['id'] for p in all_pages(c, '/v1/jobs', 2) for j in p] == whole
    assert len(whole) >= 3
    whole = [(a['time'], a['path']) for a in c.get('/v1/audit').json['items']]
    assert [(a['time'], a['path']) for p in all_pages(c, '/v1/audit', 3) for a in p] == whole
    assert len(whole) == 10


def test_bad_limits_and_tokens_answer_400_with_the_same_words_everywhere(vv_test):
    c = vv_test.client
    for i in range(3):
        assert c.post('/v1/domains/test/checkpoints', json={'name': f'c{i}'}).status == 201
    tokens = {'/v1/domains/test/checkpoints':
              c.get('/v1/domains/test/checkpoints?limit=1').json['next_page_token'],
              '/v1/audit': c.get('/v1/audit?limit=1').json['next_page_token']}
    assert all(tokens.values()), tokens
    checkpoints_token = tokens['/v1/domains/test/checkpoints']
    for path in LISTS:
        for limit in ('0', '1001', '-1', 'abc', '', '1.5', '0x10', '1e3', '+5'):
            p = problem(c.get(f'{path}?limit={limit}'), 400, 'invalid_request')
            assert p['errors'] == [{'parameter': 'limit', 'detail': LIMIT_WORDS}], (path, p)
        bad = ['garbage', '%ff%fe', "'%20OR%201=1--", 'MTpqb2JzOg', 'A' * 5000, '']
        if path != '/v1/domains/test/checkpoints':
            bad.append(checkpoints_token)  # another list's token
        else:
            bad.append(tokens['/v1/audit'])
        for token in bad:
            p = problem(c.get(f'{path}?page_token={token}'), 400, 'invalid_request')
            assert p['errors'] == [{'parameter': 'page_token', 'detail': TOKEN_WORDS}], (path, p)
    # A token whose key does not read for its list is refused the same way (1:checkpoints:x).
    p = problem(c.get('/v1/domains/test/checkpoints?page_token=MTpjaGVja3BvaW50czp4'), 400)
    assert p['errors'] == [{'parameter': 'page_token', 'detail': TOKEN_WORDS}], p
    # Backups: the deprecated offset does not mix with a token.
    r = c.get('/v1/domains/test/backups?limit=1')
    if r.status == 200:
        tok = 'MTpiYWNrdXBzOjE6eA'  # 1:backups:1:x
        p = problem(c.get(f'/v1/domains/test/backups?offset=1&page_token={tok}'), 400)
        assert p['errors'][0]['parameter'] == 'offset', p
    # Nothing changed: the lists answer as before.
    assert [i['name'] for i in c.get('/v1/domains/test/checkpoints').json['items']] == \
        ['c0', 'c1', 'c2']
