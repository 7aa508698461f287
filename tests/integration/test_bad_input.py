"""The bad-input table: hundreds of malformed, hostile or unauthorised requests
against the real daemon. Each case asserts its status and problem `code`, and
that nothing changed: the SQLite tables (dumped from the daemon's database
file) and libvirt's lists of domains, snapshots, checkpoints and backups
(through virsh for QEMU; through the API for test:///default, whose state
lives inside the daemon's process).

The table is built from openapi.yaml: every route and method it describes is
probed with bad path parameters, bad methods and, where it takes a body, with
bad bodies derived from its request schema. Resources that land later are
covered as soon as they are in the spec.
"""
import hashlib
import http.client
import json
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import pytest

from client import Client, _template_regex, record, spec
from conftest import Daemon, _finish
from helpers import virsh

MAX_BODY = 1 << 20

# Path parameters that exist in the fixture below.
GOOD = {'domain': 'test', 'name': 'bad-input-base', 'id': None}


# --- what the state looks like ---------------------------------------------------------------

def sqlite_dump(path):
    """Every row of every table, in a stable order (the daemon keeps the file in WAL mode).
    The audit log is left out: recording every write, refused ones too, is its purpose
    (tests/integration/test_audit.py holds it)."""
    con = sqlite3.connect(f'file:{path}?mode=ro', uri=True, timeout=10)
    try:
        out = {}
        tables = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            " AND name <> 'audit'")]
        for t in sorted(tables):
            out[t] = sorted(repr(r) for r in con.execute(f'SELECT * FROM "{t}"'))
        return out
    finally:
        con.close()


def api_lists(c, domains):
    """What libvirt holds, seen through the daemon (the test driver lives in its process)."""
    r = c.get('/v1/domains')
    assert r.status == 200, r
    out = {'domains': sorted((d['name'], d['state']) for d in r.json['items'])}
    for dom in domains:
        for kind in resource_collections():
            r = c.get(f'/v1/domains/{dom}/{kind}', validate=False)
            if r.status == 200:
                out[f'{dom}/{kind}'] = sorted(json.dumps(x, sort_keys=True)
                                              for x in r.json['items'])
    r = c.get('/v1/jobs', validate=False)
    if r.status == 200:
        out['jobs'] = sorted(json.dumps(x, sort_keys=True) for x in r.json['items'])
    return out


def virsh_lists(domains):
    def names(*a):
        return sorted(virsh(*a, check=False).stdout.split())
    out = {'domains': names('list', '--all', '--name')}
    for d in domains:
        out[f'{d}/snapshots'] = names('snapshot-list', d, '--name')
        out[f'{d}/checkpoints'] = names('checkpoint-list', d, '--name')
    return out


def resource_collections():
    """The per-domain collections the spec has: snapshots, checkpoints, backups ..."""
    names = set()
    for p in spec()['paths']:
        m = re.fullmatch(r'/v1/domains/\{domain\}/([a-z_]+)', p)
        if m and 'get' in spec()['paths'][p]:
            names.add(m.group(1))
    return sorted(names)


# --- a raw HTTP request, for what http.client will not send ----------------------------------

def raw_request(port, data, timeout=20):
    """Sends bytes as they are, reading the answer meanwhile (a server may answer and close
    before a large body is sent, as curl sees it); returns (status, headers, body), or
    (None, {}, b'') when no answer came."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
        def send():
            try:
                s.sendall(data)
            except OSError:
                pass
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        buf = b''
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                head, sep, rest = buf.partition(b'\r\n\r\n')
                if sep:
                    m = re.search(rb'(?i)content-length:\s*(\d+)', head)
                    if m and len(rest) >= int(m.group(1)):
                        break
        except (ConnectionResetError, socket.timeout):
            pass
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sender.join(5)
    head, _, body = buf.partition(b'\r\n\r\n')
    if not head.startswith(b'HTTP/'):
        return None, {}, b''
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(':')
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


# --- the table ------------------------------------------------------------------------------

class Case:
    def __init__(self, cid, method, path, status, code, body=None, headers=None, raw=None,
                 token=None, needs=None, pointer=None, parameter=None):
        self.id = cid
        # The field the 400 names in its problem's errors[0]: a JSON pointer into the body,
        # or a query parameter's name.
        self.pointer = pointer
        self.parameter = parameter
        self.needs = needs  # 'resource': meaningful only where the addressed object exists
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.body = body
        self.headers = headers or {}
        self.raw = raw
        self.token = token

    def __repr__(self):
        return self.id


def operations():
    """(method, template, operation) for every operation of the route table in the spec: the
    web UI's files (`x-web-ui`) are whatever --web-dir holds, outside the table."""
    for template, item in spec()['paths'].items():
        for method, op in item.items():
            if method in ('get', 'post', 'put', 'patch', 'delete') and not op.get('x-web-ui'):
                yield method.upper(), template, op


def fill(template, **over):
    vals = dict(GOOD)
    vals.update(over)

    def sub(m):
        v = vals.get(m.group(1))
        return v if v is not None else 'no-such-id'
    return re.sub(r'\{([a-z_]+)\}', sub, template)


def request_schema(op):
    rb = op.get('requestBody')
    if not rb:
        return None
    sch = rb['content'].get('application/json', {}).get('schema')
    if sch and '$ref' in sch:
        node = spec()
        for part in sch['$ref'].lstrip('#/').split('/'):
            node = node[part]
        sch = node
    return sch


def resolve(sch):
    if sch and '$ref' in sch:
        node = spec()
        for part in sch['$ref'].lstrip('#/').split('/'):
            node = node[part]
        return node
    return sch


def wrong_values(sch):
    """Values of the wrong type (or out of range) for a property schema."""
    sch = resolve(sch) or {}
    types = sch.get('type', 'string')
    types = types if isinstance(types, list) else [types]
    out = []
    if 'string' not in types:
        out.append(('a string', 'x'))
    if 'integer' not in types and 'number' not in types:
        out.append(('a number', 12))
    if 'boolean' not in types:
        out.append(('a boolean', True))
    if 'array' not in types:
        out.append(('an array', []))
    if 'object' not in types:
        out.append(('an object', {}))
    if 'null' not in types:
        out.append(('null', None))
    if 'enum' in sch:
        out.append(('not in the enum', 'no-such-choice'))
    if 'integer' in types:
        out.append(('negative', -1) if sch.get('minimum', None) == 0 else ('a fraction', 1.5))
        out.append(('beyond 64 bits', 10 ** 30))
        out.append(('1e400', 'RAW:1e400'))
        out.append(('a fraction', 0.5))
    if sch.get('maxItems'):
        item = resolve(sch.get('items', {})) or {}
        filler = 'vda' if item.get('type') == 'string' else {'target': 'vda'}
        out.append(('too many items', [filler] * (sch['maxItems'] + 1)))
    if sch.get('maxLength'):
        out.append(('too long', 'x' * (sch['maxLength'] + 1)))
    return out


NAMES = ['a<b', 'a>b', 'a&b', "a'b", 'a"b', 'a/b', '..', '.hidden', '', ' ', 'a b', 'x' * 65,
         'a\u0000b', 'a\nb', 'current', '\u00e9t\u00e9', '../../etc/passwd', 'a\\b']
PATHS = ['../../../etc/passwd', '/etc/passwd', 'relative/dir', '/tmp/../etc', '/', '',
         '/tmp/a\u0000b', '%2e%2e/%2e%2e']
PATH_FIELDS = ('file', 'memory_file', 'target_dir', 'path', 'dir')
NAME_FIELDS = ('name', 'since', 'target', 'checkpoint', 'base_checkpoint')
# Lists that may name what does not exist yet (a policy's domains: names and patterns).
FUTURE_NAME_LISTS = ('domains',)


def body_cases(method, template, op):
    """Bad bodies for one operation, from its schema; each is answered 400 invalid_request."""
    sch = request_schema(op)
    path = fill(template)
    tag = f'{method} {template}'
    cases = []

    def bad(label, body, pointer, status=400, code='invalid_request', headers=None, needs=None):
        h = {'Content-Type': 'application/json'}
        h.update(headers or {})
        if needs is None and b'\\u0000' not in body:
            needs = 'resource'
        cases.append(Case(f'{tag} body {label}', method, path, status, code, body=body,
                          headers=h, needs=needs, pointer=pointer if status == 400 else None))

    def syntax(label, body, pointer='', **kw):
        bad(label, body, pointer, needs='nothing', **kw)

    # Syntax, whatever the schema.
    for label, text in [('truncated object', b'{"a": '), ('open brace', b'{'),
                        ('open bracket', b'['), ('bare word', b'nul'),
                        ('trailing garbage', b'{}}'), ('single quotes', b"{'a': 1}"),
                        ('trailing comma', b'{"a": 1,}'), ('missing comma', b'{"a": 1 "b": 2}'),
                        ('bad escape', b'{"a": "\\x"}'), ('short unicode escape', b'{"a": "\\u12"}'),
                        ('lone surrogate', b'{"a": "\\ud800"}'), ('raw invalid UTF-8', b'{"a": "\xff\xfe"}'),
                        ('overlong UTF-8', b'{"a": "\xc0\xaf"}'), ('raw NUL', b'{"a": "x\x00y"}'),
                        ('BOM', b'\xef\xbb\xbf{}'), ('comment', b'{} // c'),
                        ('NaN', b'{"a": NaN}'), ('two documents', b'{} {}'),
                        ('duplicate keys', b'{"a": 1, "a": 2}'),
                        ('deep nesting 10^5', b'[' * 100000 + b']' * 100000),
                        ('deep objects', b'{"a":' * 50000 + b'1' + b'}' * 50000),
                        ('not an object: array', b'[]'), ('not an object: string', b'"x"'),
                        ('not an object: number', b'1'), ('not an object: null', b'null'),
                        ('not an object: true', b'true'),
                        ('huge integer', b'{"no_such_field": 123456789012345678901234567890}')]:
        syntax(label, text)  # the whole body: pointer ""
    syntax('unknown field', b'{"no_such_field": 1}', '/no_such_field')
    syntax('unknown field with / and ~', b'{"a/b~c": 1}', '/a~1b~0c')
    syntax('1 MiB + 1', b'{"a": "' + b'x' * (MAX_BODY - 8) + b'"}', status=413,
           code='payload_too_large')
    syntax('text/plain', b'{}', status=415, code='unsupported_media_type',
           headers={'Content-Type': 'text/plain'})
    syntax('form encoded', b'a=1', status=415, code='unsupported_media_type',
           headers={'Content-Type': 'application/x-www-form-urlencoded'})
    syntax('json prefix type', b'{}', status=415, code='unsupported_media_type',
           headers={'Content-Type': 'application/jsonx'})
    if not sch:
        return cases
    props = sch.get('properties', {})
    required = sch.get('required', [])
    # A value of the right type for each, so that the case's field is the only one wrong.
    base = required_values(sch, '/tmp')
    if required:
        syntax('empty body', b'', f'/{required[0]}')
        syntax('empty object', b'{}', f'/{required[0]}')
    for name, psch in props.items():
        for label, value in wrong_values(psch):
            doc = dict(base)
            if value == 'RAW:1e400':
                text = json.dumps(doc)[:-1] + (', ' if doc else '') + f'"{name}": 1e400}}'
                syntax(f'{name} {label}', text.encode())  # not JSON a parser takes: ""
                continue
            doc[name] = value
            # Beyond 64 bits is refused by the parser: the whole body.
            syntax(f'{name} {label}', json.dumps(doc).encode(),
                   '' if label == 'beyond 64 bits' else f'/{name}')
        item = resolve(psch)
        if name in NAME_FIELDS:
            for n in NAMES:
                if n == 'current' and '/snapshots' not in template:
                    continue  # reserved for snapshots only ("snapshots/current")
                doc = dict(base)
                doc[name] = n
                bad(f'{name}={n[:20]!r}', json.dumps(doc).encode(), f'/{name}')
        if name in PATH_FIELDS or name.endswith('_dir'):
            for pth in PATHS:
                doc = dict(base)
                doc[name] = pth
                bad(f'{name}={pth!r}', json.dumps(doc).encode(), f'/{name}')
        if item and item.get('type') == 'array':
            it = resolve(item.get('items', {})) or {}
            if it.get('type') == 'string':
                for n in ('../vda', 'vda/../..', '', 'a\u0000', 'no-such-disk'):
                    if n == 'no-such-disk' and name in FUTURE_NAME_LISTS:
                        continue
                    doc = dict(base)
                    doc[name] = [n]
                    bad(f'{name}[]={n!r}', json.dumps(doc).encode(), f'/{name}/0')
                doc = dict(base)
                doc[name] = ['vda', 'vda']
                # Disks: the second names the first again; any other list: 'vda' is wrong at once.
                bad(f'{name} duplicate', json.dumps(doc).encode(),
                    f'/{name}/1' if name == 'disks' or name in FUTURE_NAME_LISTS else
                    f'/{name}/0')
            if it.get('type') == 'object':
                for k, v in it.get('properties', {}).items():
                    values = PATHS if k in PATH_FIELDS else NAMES[:8]
                    for val in values:
                        entry = {kk: 'vda' for kk in it.get('required', [])}
                        entry[k] = val
                        doc = dict(base)
                        doc[name] = [entry]
                        bad(f'{name}[].{k}={val!r}', json.dumps(doc).encode(), f'/{name}/0/{k}')
                doc = dict(base)
                doc[name] = [{'nope': 1}]
                bad(f'{name}[] unknown field', json.dumps(doc).encode(), f'/{name}/0/nope')
        if item and item.get('type') in ('object', ['object', 'null']) or (
                item and isinstance(item.get('type'), list) and 'object' in item['type']):
            for k in item.get('properties', {}):
                for n in NAMES[:10]:
                    doc = dict(base)
                    doc[name] = {k: n}
                    bad(f'{name}.{k}={n!r}', json.dumps(doc).encode(), f'/{name}/{k}')
            doc = dict(base)
            doc[name] = {'nope': 1}
            bad(f'{name} unknown field', json.dumps(doc).encode(), f'/{name}/nope')
    return cases


BAD_SEGMENTS = [
    # (label, raw segment, status, code); None: answered as a name no object has (404),
    # or for a snapshot name, 400 where no snapshot name can be so (see below).
    ('dot-dot', '..', None, None),
    ('encoded dot-dot', '%2e%2e', None, None),
    ('encoded traversal', '..%2f..%2fetc%2fpasswd', None, None),
    ('NUL', 'a%00b', 400, 'invalid_request'),
    ('bad escape', 'a%zzb', 400, 'invalid_request'),
    ('cut escape', 'a%4', 400, 'invalid_request'),
    ('invalid UTF-8', '%ff%fe', None, None),
    ('overlong UTF-8', '%c0%af', None, None),
    ('markup', '%3Cscript%3E', None, None),
    ('quotes', '%27%22%26', None, None),
    ('backslash', '..%5c..%5c', None, None),
    ('long', 'x' * 1000, None, None),
    ('encoded newline', 'a%0d%0aSet-Cookie:x', None, None),
]
# Snapshot names in paths may be ones other tools made, so a lookup refuses (400) only what
# no snapshot name can be: ".", "..", a "/", a control character, over 255 bytes.
NO_SNAPSHOT_NAME = ('dot-dot', 'encoded dot-dot', 'encoded traversal', 'long', 'encoded newline')


def valid_body(op):
    """The smallest body the operation's schema takes (its required fields)."""
    sch = request_schema(op)
    if not sch:
        return b'{}'
    return json.dumps(required_values(sch, '/tmp/vv-restore')).encode()


def required_values(sch, directory):
    """A value of the right type for each required field of sch: an empty object or list (a
    list that may not be empty: its first allowed value), true, 0, a directory for paths, a URL
    for a URL, else 'x'."""
    props = sch.get('properties', {})
    doc = {}
    smallest = {'boolean': True, 'integer': 0, 'object': {}, 'array': []}
    for r in sch.get('required', []):
        p = resolve(props.get(r, {})) or {}
        kind = p.get('type', 'string')
        kind = kind[0] if isinstance(kind, list) else kind
        if kind == 'array' and p.get('minItems'):
            doc[r] = [(resolve(p.get('items', {})).get('enum') or ['x'])[0]]
            continue
        doc[r] = (directory if r in PATH_FIELDS or r.endswith('_dir') else
                  'http://127.0.0.1:9/hook' if r == 'url' else smallest.get(kind, 'x'))
    return doc


def path_cases():
    cases = []
    for method, template, op in operations():
        params = re.findall(r'\{([a-z_]+)\}', template)
        for p in params:
            for label, seg, status, code in BAD_SEGMENTS:
                path = fill(template, **{p: seg})
                if status is None:
                    if p == 'name' and '/snapshots/' in template and label in NO_SNAPSHOT_NAME:
                        status, code = 400, 'invalid_request'
                    else:
                        status, code = 404, 'not_found'
                post = method in ('POST', 'PUT', 'PATCH')
                cases.append(Case(f'{method} {template} {{{p}}}={label}', method, path, status,
                                  code, body=valid_body(op) if post else None,
                                  headers={'Content-Type': 'application/json'} if post else {}))
    return cases


def method_cases():
    cases = []
    seen = set()
    for method, template, op in operations():
        if template in seen:
            continue
        seen.add(template)
        allowed = {m.upper() for m in spec()['paths'][template] if m in
                   ('get', 'post', 'put', 'patch', 'delete')}
        for m in ('PUT', 'PATCH', 'DELETE', 'POST', 'OPTIONS', 'TRACE', 'FOO'):
            if m in allowed:
                continue
            # ".../snapshots/current" is also ".../snapshots/{name}", which has DELETE.
            if any(m.lower() in item and _template_regex(t).match(fill(template))
                   for t, item in spec()['paths'].items()):
                continue
            cases.append(Case(f'{m} {template}', m, fill(template), 405, 'method_not_allowed'))
    return cases


def query_cases():
    cases = []
    for method, template, op in operations():
        if method != 'GET':
            continue
        for prm in op.get('parameters', []):
            prm = resolve(prm)
            if prm.get('in') != 'query':
                continue
            sch = resolve(prm.get('schema', {})) or {}
            values = []
            if sch.get('type') == 'integer':
                values = ['abc', '-1', '0x10', '1e3', '99999999999999999999', '']
                if 'minimum' in sch:
                    values.append(str(sch['minimum'] - 1))
                if 'maximum' in sch:
                    values.append(str(sch['maximum'] + 1))
            elif sch.get('type') == 'boolean':
                values = ['maybe', '2', '%00', '1', '0', '']  # true and false only
            elif 'enum' in sch:
                values = ['no-such-choice', '%00', '%ff']
            elif prm['name'] in ('cursor', 'page_token'):
                values = ['garbage', '%ff%fe', "'%20OR%201=1--"]
            for v in values:
                path = fill(template) + f'?{prm["name"]}={v}'
                cases.append(Case(f'GET {template} ?{prm["name"]}={v}', 'GET', path, 400,
                                  'invalid_request', parameter=prm['name']))
    return cases


def transport_cases():
    """What goes wrong before the router: long URLs and headers, odd request lines."""
    return [
        Case('URL of 9000 bytes', 'GET', '/v1/domains/' + 'x' * 9000, 414, 'uri_too_long'),
        Case('cursor of 9000 bytes', 'GET', '/v1/jobs?cursor=' + 'x' * 9000, 400,
             'invalid_request'),
        Case('page_token of 9000 bytes', 'GET', '/v1/jobs?page_token=' + 'x' * 9000, 400,
             'invalid_request'),
        Case('unknown path', 'GET', '/v1/nothing-here', 404, 'not_found'),
        Case('double slash', 'GET', '//v1/domains', 404, 'not_found'),
        Case('trailing slash', 'GET', '/v1/domains/', 404, 'not_found'),
        Case('static traversal', 'GET', '/../../etc/passwd', 404, 'not_found'),
        Case('static encoded traversal', 'GET', '/%2e%2e/%2e%2e/etc/passwd', 404, 'not_found'),
        Case('static hidden file', 'GET', '/.git/config', 404, 'not_found'),
        Case('static NUL', 'GET', '/index.html%00.png', 404, 'not_found'),
        Case('chunked 1 MiB + 1', 'POST', fill('/v1/domains/{domain}/snapshots'), 413,
             'payload_too_large',
             raw=lambda path: (f'POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json'
                               '\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
                               ).encode() + b''.join(
                                   b'%x\r\n' % (64 * 1024) + b'x' * (64 * 1024) + b'\r\n'
                                   for _ in range(17)) + b'0\r\n\r\n'),
        Case('Content-Length beyond the cap', 'POST', fill('/v1/domains/{domain}/snapshots'), 413,
             'payload_too_large',
             raw=lambda path: (f'POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json'
                               '\r\nContent-Length: 9999999999\r\nConnection: close'
                               '\r\n\r\n{}').encode()),
        # Answered by libmicrohttpd itself, before any handler: its status, its own body.
        Case('Content-Length beyond 64 bits', 'POST', fill('/v1/domains/{domain}/snapshots'), 413,
             None,
             raw=lambda path: (f'POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json'
                               '\r\nContent-Length: 99999999999999999999\r\nConnection: close'
                               '\r\n\r\n{}').encode()),
        Case('header of 100 KiB', 'GET', '/v1/domains', 431, None,
             raw=lambda path: (f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ' + 'x' * 100000 +
                               '\r\nConnection: close\r\n\r\n').encode()),
        Case('URL of 100 KiB', 'GET', '/v1/domains', 414, None,
             raw=lambda path: (f'GET {path}/' + 'x' * 100000 + ' HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                               'Connection: close\r\n\r\n').encode()),
        Case('raw invalid UTF-8 in the path', 'GET', '/v1/domains/\xff\xfe', 404, 'not_found',
             raw=lambda path: b'GET /v1/domains/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                              b'Connection: close\r\n\r\n'),
    ]


def auth_cases():
    """Run against a daemon with a token file: every protected operation, every bad token."""
    cases = []
    for method, template, op in operations():
        path = fill(template)
        body = b'{}' if method == 'POST' else None
        hdr = {'Content-Type': 'application/json'} if body else {}
        if template in ('/healthz', '/readyz', '/openapi.yaml'):
            continue
        for label, tok in [('no token', 'NONE'), ('wrong token', 'WRONG'),
                           ('expired token', 'EXPIRED')]:
            cases.append(Case(f'{method} {template} {label}', method, path, 401, 'unauthorized',
                              body=body, headers=hdr, token=tok))
        cases.append(Case(f'{method} {template} Basic scheme', method, path, 401, 'unauthorized',
                          body=body, headers=dict(hdr, Authorization='Basic dXNlcjpwYXNz'),
                          token='RAW'))
        if method == 'POST':
            cases.append(Case(f'{method} {template} as viewer', method, path, 403, 'forbidden',
                              body=body, headers=hdr, token='VIEWER'))
        if method == 'DELETE':
            cases.append(Case(f'{method} {template} as viewer', method, path, 403, 'forbidden',
                              headers=hdr, token='VIEWER'))
            cases.append(Case(f'{method} {template} as operator', method, path, 403, 'forbidden',
                              headers=hdr, token='OPERATOR'))
    for label, value in [('empty bearer', 'Bearer '), ('bearer only', 'Bearer'),
                         ('two spaces', 'Bearer  OPERATOR'), ('lower case scheme', 'bearer WRONG'),
                         ('huge token', 'Bearer ' + 'x' * 4000), ('NUL-ish', 'Bearer a\x01b')]:
        cases.append(Case(f'GET /v1/domains {label}', 'GET', '/v1/domains', 401, 'unauthorized',
                          headers={'Authorization': value}, token='RAW'))
    return cases


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def plain():
    d = Daemon('test:///default').start()
    c = d.client
    r = c.post(f'/v1/domains/test/snapshots', json={'name': GOOD['name']})
    assert r.status in (201, 202), r
    if r.status == 202:
        assert c.wait_job(r.json['id'])['state'] == 'succeeded'
    # A policy of that name too, for the bodies of PUT /v1/policies/{name}; it names no domain.
    r = c.post('/v1/policies', json={'name': GOOD['name'], 'domains': ['bad-input-none'],
                                     'schedule': '@yearly', 'enabled': False})
    assert r.status == 201, r
    yield d
    _finish(d)


TOKENS = {'VIEWER': 'viewer-token-0123456789', 'OPERATOR': 'operator-token-0123456789',
          'ADMIN': 'admin-token-0123456789', 'EXPIRED': 'expired-token-0123456789'}


@pytest.fixture(scope='module')
def guarded(tmp_path_factory):
    d = tmp_path_factory.mktemp('tokens')
    path = d / 'tokens'

    def line(tok, role, extra=''):
        return f'sha256:{hashlib.sha256(tok.encode()).hexdigest()} {role} {extra}\n'
    path.write_text(line(TOKENS['VIEWER'], 'viewer') + line(TOKENS['OPERATOR'], 'operator') +
                    line(TOKENS['ADMIN'], 'admin') +
                    line(TOKENS['EXPIRED'], 'admin', 'expires=2020-01-01T00:00:00Z'))
    dmn = Daemon('test:///default', args=['--token-file', str(path)],
                 token=TOKENS['ADMIN']).start()
    yield dmn
    _finish(dmn)


def state(d):
    c = Client(d.url, token=d.token, validate=False)
    return {'db': sqlite_dump(d.db_path), 'libvirt': api_lists(c, ['test'])}


def run_case(d, case, token_map=None):
    """Sends one case; returns (status, problem json or None)."""
    headers = dict(case.headers)
    if case.token in ('RAW', 'NONE'):
        pass  # the case's own Authorization header, or none
    elif case.token is not None:
        headers['Authorization'] = f'Bearer {TOKENS.get(case.token, case.token)}'
    elif d.token and token_map is None:
        headers['Authorization'] = f'Bearer {d.token}'
    raw = case.raw
    recorded = raw is None  # a case's own raw bytes may be no request of case.method at all
    if raw is None and case.body is not None and len(case.body) > 65536:
        # Sent while the answer is read, as curl does: the daemon answers 413 and closes
        # without reading the rest.
        def raw(path):
            head = f'{case.method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n'
            head += ''.join(f'{k}: {v}\r\n' for k, v in headers.items())
            head += f'Content-Length: {len(case.body)}\r\n\r\n'
            return head.encode() + case.body
    if raw is not None:
        data = raw(case.path)
        status, hdrs, body = raw_request(d.port, data)
        ctype = hdrs.get('content-type', '')
        if recorded and status is not None:
            record(case.method, case.path, status, hdrs, body)
    else:
        conn = http.client.HTTPConnection('127.0.0.1', d.port, timeout=20)
        try:
            conn.putrequest(case.method, case.path, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            if case.body is not None:
                conn.putheader('Content-Length', str(len(case.body)))
            conn.endheaders(case.body)
            r = conn.getresponse()
            status, body, ctype = r.status, r.read(), r.getheader('content-type', '')
            record(case.method, case.path, status, {k.lower(): v for k, v in r.getheaders()},
                   body)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            status, body, ctype = None, b'', ''
        finally:
            conn.close()
    problem = None
    if ctype.startswith('application/problem+json'):
        problem = json.loads(body)
    return status, problem


def check(d, cases, state_fn=state):
    failures = []
    before = state_fn(d)
    for case in cases:
        status, problem = run_case(d, case)
        got_code = problem.get('code') if problem else None
        if status != case.status or got_code != case.code:
            failures.append(f'{case.id}: expected {case.status} {case.code}, got {status} '
                            f'{got_code} {problem and problem.get("detail")!r}')
        elif problem is not None and problem.get('status') != status:
            failures.append(f'{case.id}: problem status {problem.get("status")} != {status}')
        elif problem is not None:
            failures += [f'{case.id}: {w}' for w in field_failures(case, problem)]
        if d.proc.poll() is not None:
            failures.append(f'{case.id}: the daemon died:\n{d.log()[-3000:]}')
            break
        after = state_fn(d)
        if after != before:
            what = []
            for k in after:
                if isinstance(after[k], dict):
                    what += [f'{k}.{kk}' for kk in set(after[k]) | set(before.get(k, {}))
                             if after[k].get(kk) != before.get(k, {}).get(kk)]
                elif after[k] != before.get(k):
                    what.append(k)
            failures.append(f'{case.id}: the state changed ({", ".join(what)})')
            before = after
    return failures


# The JSON library's own wording, which no answer may show.
LIBRARY_WORDS = ('item(s) left unpacked', 'Expected ', 'got ')


def field_failures(case, problem):
    """What is wrong with the field a problem names: the case's pointer or parameter in
    errors[0], its detail also in the problem's detail; never the JSON library's words."""
    out = [f'the detail has {w!r}: {problem.get("detail")!r}' for w in LIBRARY_WORDS
           if w in problem.get('detail', '')]
    for kind in ('pointer', 'parameter'):
        want = getattr(case, kind)
        if want is None:
            continue
        errors = problem.get('errors') or [{}]
        if errors[0].get(kind) != want:
            out.append(f'names {errors[0]!r}, not {kind} {want!r} ({problem.get("detail")!r})')
        elif errors[0].get('detail', '\0') not in problem.get('detail', ''):
            out.append(f'errors[0].detail {errors[0].get("detail")!r} is not in the detail '
                       f'{problem.get("detail")!r}')
    return out


def test_every_body_and_query_case_names_a_field():
    """The table itself: each 400 from a body names a pointer, each from a query a parameter."""
    body = [c for m, t, op in operations() if m in ('POST', 'PUT') for c in body_cases(m, t, op)]
    assert all(c.pointer is not None for c in body if c.status == 400)
    assert all(c.parameter for c in query_cases())


def test_table_is_big_enough():
    n = (sum(len(body_cases(m, t, op)) for m, t, op in operations() if m in ('POST', 'PUT'))
         + len(path_cases()) + len(method_cases()) + len(query_cases()) + len(transport_cases())
         + len(auth_cases()))
    assert n >= 150, n


def on_test_driver(case):
    """Checks of a body's values that need the addressed object run where it exists: backups
    only on QEMU (test:///default answers 501 to them; the backup cases below run there)."""
    return case.needs != 'resource' or '/backups' not in case.path


def test_bad_bodies(plain):
    cases = [c for m, t, op in operations() if m in ('POST', 'PUT') for c in body_cases(m, t, op)
             if on_test_driver(c)]
    failures = check(plain, cases)
    assert not failures, f'{len(failures)} of {len(cases)} cases:\n' + '\n'.join(failures)


def test_bad_paths_methods_and_queries(plain):
    cases = path_cases() + method_cases() + query_cases()
    failures = check(plain, cases)
    assert not failures, f'{len(failures)} of {len(cases)} cases:\n' + '\n'.join(failures)


def test_transport_abuse(plain):
    cases = transport_cases()
    failures = check(plain, cases)
    assert not failures, f'{len(failures)} of {len(cases)} cases:\n' + '\n'.join(failures)
    assert plain.client.get('/v1/domains').status == 200


def test_tokens_and_roles(guarded):
    cases = auth_cases()
    failures = check(guarded, cases)
    assert not failures, f'{len(failures)} of {len(cases)} cases:\n' + '\n'.join(failures)
    assert 'WRONG' not in guarded.log() and TOKENS['EXPIRED'] not in guarded.log()


# --- on QEMU: what needs a real backup ------------------------------------------------------

@pytest.fixture(scope='module')
def qemu_backup(sandbox, tmp_path_factory):
    import sandbox as sb
    roots = tmp_path_factory.mktemp('restore-root')
    name = sb.unique_name('vvt-bad-')
    sb.domain_create(name)
    d = Daemon('qemu:///system', args=['--restore-roots', str(roots)]).start()
    try:
        d.wait_ready()
        c = d.client
        r = c.post(f'/v1/domains/{name}/backups', json={'type': 'full'})
        assert r.status == 202, r
        assert c.wait_job(r.json['job_id'])['state'] == 'succeeded'
        yield d, name, r.json['id'], str(roots)
    finally:
        _finish(d)
        sb.domain_remove(name)


def test_bad_backup_bodies_on_qemu(qemu_backup):
    d, dom, backup_id, roots = qemu_backup
    saved = dict(GOOD)
    GOOD.update(domain=dom, id=backup_id)
    try:
        cases = [c for m, t, op in operations() if m == 'POST' and '/backups' in t
                 for c in body_cases(m, t, op) if c.needs == 'resource']
        # Restores may only write inside --restore-roots, into a folder that is not there yet.
        restore = fill('/v1/domains/{domain}/backups/{id}/restore')
        for label, target, status, code in [
                ('outside the roots', '/etc', 400, 'invalid_request'),
                ('escaping the root', roots + '/../../etc', 400, 'invalid_request'),
                ('a file in the root', roots + '/x/../../../etc/passwd', 400, 'invalid_request'),
                # Resolved on disk: the host's own refusal.
                ('symlinked out', roots + '/link', 403, 'access_denied'),
                ('symlinked out, deeper', roots + '/link/sub', 403, 'access_denied')]:
            cases.append(Case(f'restore target_dir {label}', 'POST', restore, status, code,
                              body=json.dumps({'target_dir': target}).encode(),
                              headers={'Content-Type': 'application/json'},
                              pointer='/target_dir' if status == 400 else None))
    finally:
        GOOD.clear()
        GOOD.update(saved)
    os.symlink('/etc', os.path.join(roots, 'link'))

    def qstate(_d):
        # Only this test's domain: others on a shared host come and go meanwhile.
        c = Client(d.url, validate=False)
        api, virsh = api_lists(c, [dom]), virsh_lists([dom])
        api['domains'] = [x for x in api['domains'] if x[0] == dom]
        virsh['domains'] = [x for x in virsh['domains'] if x == dom]
        db = sqlite_dump(d.db_path)
        # The daemon also records what it finds of other domains' checkpoints on the host.
        db['checkpoints'] = [r for r in db.get('checkpoints', []) if uuid in r]
        return {'db': db, 'api': api, 'virsh': virsh, 'roots': sorted(os.listdir(roots))}
    uuid = subprocess.run(['virsh', '-q', '-c', 'qemu:///system', 'domuuid', dom],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The backup's job may still write its last fields: start from a settled state.
    deadline = time.time() + 30
    while qstate(d) != qstate(d) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    failures = check(d, cases, state_fn=qstate)
    assert len(cases) >= 40
    assert not failures, f'{len(failures)} of {len(cases)} cases:\n' + '\n'.join(failures)



# --- Range headers on a ready pull backup's data ---------------------------------------------

def range_cases(path, size):
    invalid = [('no unit', '0-99'), ('another unit', 'items=0-9'), ('letters', 'bytes=a-b'),
               ('reversed', 'bytes=9-0'), ('nothing', 'bytes='), ('a lone dash', 'bytes=-'),
               ('a trailing comma', 'bytes=0-9,'), ('a semicolon', 'bytes=0-9;'),
               ('two dashes', 'bytes=--5'), ('a sign', 'bytes=+0-9'),
               ('20 digits', 'bytes=99999999999999999999-'),
               ('2^64 - 1', 'bytes=18446744073709551615-'),
               ('17 ranges', 'bytes=' + ','.join(f'{i}-{i}' for i in range(17))),
               ('a space in a number', 'bytes=1 0-20'), ('hex', 'bytes=0x0-0x10')]
    unsatisfiable = [('from the end', f'bytes={size}-'),
                     ('far past the end', f'bytes={size * 2}-{size * 3}'),
                     ('an empty suffix', 'bytes=-0'),
                     ('all of several past the end', f'bytes={size}-,{size + 10}-{size + 20}')]
    return ([Case(f'Range {label}: {value[:40]}', 'GET', path, 400, 'invalid_request',
                  headers={'Range': value}) for label, value in invalid] +
            [Case(f'Range {label}', 'GET', path, 416, 'range_not_satisfiable',
                  headers={'Range': value}) for label, value in unsatisfiable])


def test_bad_range_headers_on_qemu(vv_qemu, qemu_domain):
    c, dom = vv_qemu.client, qemu_domain
    r = c.post(f'/v1/domains/{dom}/backups', json={'type': 'full', 'mode': 'pull'})
    assert r.status == 202, r
    bid = r.json['id']
    deadline = time.time() + 60
    while (b := c.get(f'/v1/domains/{dom}/backups/{bid}').json)['state'] != 'ready':
        assert b['state'] == 'running' and time.time() < deadline, b
        time.sleep(0.1)
    path = f'/v1/domains/{dom}/backups/{bid}/disks/vda/data'
    r = c.get(path, headers={'Range': 'bytes=0-0'})
    assert r.status == 206, r
    size = int(r.headers['content-range'].rsplit('/', 1)[1])
    uuid = b['domain_uuid']

    def qstate(d):
        db = sqlite_dump(d.db_path)
        db['checkpoints'] = [x for x in db.get('checkpoints', []) if uuid in x]
        backup = Client(d.url, validate=False).get(f'/v1/domains/{dom}/backups/{bid}').json
        virsh = virsh_lists([dom])
        # Only this test's domain: others on a shared host come and go meanwhile.
        virsh['domains'] = [x for x in virsh['domains'] if x == dom]
        return {'db': db, 'virsh': virsh, 'state': backup['state']}

    cases = range_cases(path, size)
    failures = check(vv_qemu, cases, state_fn=qstate)
    assert not failures, f'{len(failures)} of {len(cases)} cases:\n' + '\n'.join(failures)
    # The export still serves good ranges, and the backup ends normally.
    r = c.get(path, headers={'Range': f'bytes={size - 512}-'})
    assert r.status == 206 and len(r.raw) == 512, r
    assert c.post(f'/v1/domains/{dom}/backups/{bid}/finish').status == 200
