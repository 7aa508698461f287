"""A small HTTP client for the integration tests.

Every JSON answer it receives is validated against the schemas of
openapi.yaml (the response declared for that path, method and status), so
the tests hold the daemon to its contract as a side effect of using it.

With VV_RECORD_DIR set, it also appends one JSON line per answer to
$VV_RECORD_DIR/answers-<pid>.jsonl (method, path with query, status, content
type, headers, body), which tests/contract/validate.mjs then holds against
openapi.yaml with a JSON Schema 2020-12 validator. The raw-socket requests of
helpers.py and the hand-made raw requests of test_bad_input.py are not recorded.
"""
import http.client
import json
import os
import re
import time
import urllib.parse

import yaml
import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SPEC = None

# Headers that say nothing about the contract, left out of the records.
_UNRECORDED = {'date', 'connection', 'content-length', 'keep-alive', 'transfer-encoding'}
_RECORD_MAX_JSON = 4 << 20


def record(method, path, status, headers, raw):
    """Appends the answer to $VV_RECORD_DIR/answers-<pid>.jsonl, when that is set: one line,
    written with a single O_APPEND write, so that threads of one process do not mix lines."""
    folder = os.environ.get('VV_RECORD_DIR')
    if not folder:
        return
    ctype = headers.get('content-type', '')
    media = ctype.split(';')[0].strip().lower()
    rec = {'method': method, 'path': path, 'status': status, 'content_type': ctype,
           'headers': {k: v for k, v in headers.items() if k not in _UNRECORDED},
           'length': len(raw),
           'test': os.environ.get('PYTEST_CURRENT_TEST', '').rsplit(' (', 1)[0]}
    if (media == 'application/json' or media.endswith('+json')) and raw \
            and len(raw) <= _RECORD_MAX_JSON:
        try:
            rec['body'] = json.loads(raw)
        except ValueError:
            rec['body_error'] = 'not JSON'
    line = (json.dumps(rec, separators=(',', ':')) + '\n').encode()
    os.makedirs(folder, exist_ok=True)
    fd = os.open(os.path.join(folder, f'answers-{os.getpid()}.jsonl'),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def spec():
    global _SPEC
    if _SPEC is None:
        with open(os.path.join(ROOT, 'openapi.yaml')) as f:
            _SPEC = yaml.safe_load(f)
    return _SPEC


def _template_regex(template):
    parts = []
    for seg in template.strip('/').split('/'):
        parts.append(re.sub(r'\{[^}]+\}', '[^/]+', re.escape(seg).replace('\\{', '{').replace('\\}', '}')))
    return re.compile('^/' + '/'.join(parts) + '$')


def find_operation(method, path):
    """Returns (template, operation) of the spec for a concrete path, or (None, None)."""
    best = None
    for template, item in spec().get('paths', {}).items():
        if _template_regex(template).match(path):
            # Prefer the template with the most literal characters.
            score = len(re.sub(r'\{[^}]+\}', '', template))
            if best is None or score > best[0]:
                best = (score, template, item)
    if not best:
        return None, None
    op = best[2].get(method.lower())
    return best[1], op


class SchemaError(AssertionError):
    pass


def validate_response(method, path, status, content_type, body):
    template, op = find_operation(method, path)
    if op is None:
        raise SchemaError(f'{method} {path}: not described in openapi.yaml')
    responses = op.get('responses', {})
    resp = responses.get(str(status)) or responses.get(f'{str(status)[0]}XX') or responses.get('default')
    if resp is None:
        raise SchemaError(f'{method} {template}: status {status} is not documented')
    if '$ref' in resp:
        resp = _resolve(resp['$ref'])
    content = resp.get('content', {})
    media = (content_type or '').split(';')[0].strip()
    if not content:
        return
    if media not in content:
        raise SchemaError(f'{method} {template} {status}: content type {media!r} not documented '
                          f'(documented: {list(content)})')
    schema = content[media].get('schema')
    if schema is None or not media.endswith('json'):
        return
    wrapped = dict(schema)
    wrapped['components'] = spec().get('components', {})
    wrapped['$schema'] = 'https://json-schema.org/draft/2020-12/schema'
    # References in the spec are "#/components/...": resolve them against the wrapper.
    try:
        jsonschema.validate(body, wrapped, cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError as e:
        raise SchemaError(f'{method} {template} {status}: answer does not match the spec: '
                          f'{e.message} at {list(e.absolute_path)}') from None


def _resolve(ref):
    node = spec()
    for part in ref.lstrip('#/').split('/'):
        node = node[part]
    return node


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.text = raw.decode('utf-8', 'replace')
        self._json = None

    @property
    def json(self):
        if self._json is None:
            self._json = json.loads(self.raw)
        return self._json

    @property
    def content_type(self):
        return self.headers.get('content-type', '')

    def __repr__(self):
        return f'<Response {self.status} {self.text[:300]!r}>'


class Client:
    def __init__(self, base, token=None, validate=True, timeout=60):
        u = urllib.parse.urlsplit(base)
        self.host = u.hostname
        self.port = u.port
        self.scheme = u.scheme
        self.token = token
        self.validate = validate
        self.timeout = timeout

    def request(self, method, path, body=None, json_body=None, headers=None, validate=None):
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault('Content-Type', 'application/json')
        elif body is None and method in ('POST', 'PUT', 'PATCH'):
            headers.setdefault('Content-Type', 'application/json')  # the service asks it
        if isinstance(body, str):
            body = body.encode()
        if self.token and 'Authorization' not in headers:
            headers['Authorization'] = f'Bearer {self.token}'
        if self.scheme == 'https':
            import ssl
            ctx = ssl._create_unverified_context()
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            resp = Response(r.status, hdrs, raw)
        finally:
            conn.close()
        record(method, path, resp.status, resp.headers, raw)
        if validate if validate is not None else self.validate:
            self._check(method, path, resp)
        return resp

    def _check(self, method, path, resp):
        p = urllib.parse.urlsplit(path).path
        ctype = resp.content_type.split(';')[0]
        if ctype in ('application/json', 'application/problem+json'):
            body = resp.json
            if resp.status >= 400:
                for k in ('type', 'title', 'status', 'detail', 'code'):
                    assert k in body, f'problem without {k}: {body}'
                assert body['status'] == resp.status
            template, op = find_operation(method if method != 'HEAD' else 'GET', p)
            if op is not None or resp.status < 400:
                if resp.status in (404, 405) and op is None:
                    return
                validate_response(method, p, resp.status, resp.content_type, body)

    def get(self, path, **kw):
        return self.request('GET', path, **kw)

    def post(self, path, json=None, **kw):
        return self.request('POST', path, json_body=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request('PUT', path, json_body=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request('PATCH', path, json_body=json, **kw)

    def delete(self, path, **kw):
        return self.request('DELETE', path, **kw)

    def wait_job(self, job_id, timeout=120, states=('succeeded', 'failed', 'cancelled')):
        """Polls /v1/jobs/{id} until it reaches one of states; returns the job."""
        deadline = time.time() + timeout
        while True:
            r = self.get(f'/v1/jobs/{job_id}')
            assert r.status == 200, r
            if r.json['state'] in states:
                return r.json
            if time.time() > deadline:
                raise AssertionError(f'job {job_id} still {r.json["state"]} after {timeout}s: {r.json}')
            time.sleep(0.2)
