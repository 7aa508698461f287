"""The contract: openapi.yaml is valid, and it and the router describe the same routes."""
import os
import re
import subprocess

from client import ROOT, spec

BUILD = os.environ.get('VIRTVAULT_BUILD', os.path.join(ROOT, 'build'))


def dump_routes():
    out = subprocess.run([os.path.join(BUILD, 'tests', 'dump-routes')], check=True,
                         capture_output=True, text=True).stdout
    return [line.split() for line in out.splitlines()]


def router_routes():
    return {(method, path): role for method, path, role, *_ in dump_routes()}


def conditional_routes():
    return {(method, path) for method, path, _, *flags in dump_routes() if 'conditional' in flags}


def spec_routes():
    """The operations of the route table: all but the web UI's files (`x-web-ui`), which are
    served from --web-dir for any GET outside /v1/ that no route takes."""
    found = {}
    for path, item in spec()['paths'].items():
        for method, op in item.items():
            if method in ('get', 'post', 'put', 'patch', 'delete') and not op.get('x-web-ui'):
                found[(method.upper(), path)] = op
    return found


def normalise(path):
    # Placeholder names may differ between the table and the spec.
    return re.sub(r'\{[^}]+\}', '{}', path)


def test_redocly_lint():
    lint = os.path.join(ROOT, 'node_modules', '.bin', 'redocly')
    p = subprocess.run([lint, 'lint', '--format=stylish', 'openapi.yaml'], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_route_is_in_the_spec_and_back():
    r = {(m, normalise(p)) for (m, p) in router_routes()}
    s = {(m, normalise(p)) for (m, p) in spec_routes()}
    assert sorted(r - s) == [], 'routes missing from openapi.yaml'
    assert sorted(s - r) == [], 'openapi.yaml describes routes the router lacks'


def test_public_routes_match_spec_security():
    ops = {(m, normalise(p)): op for (m, p), op in spec_routes().items()}
    for (method, path), role in router_routes().items():
        op = ops[(method, normalise(path))]
        public_in_spec = op.get('security') == []
        assert public_in_spec == (role == 'public'), f'{method} {path}: role {role}'


def test_every_operation_names_the_role_the_router_asks():
    ops = {(m, normalise(p)): op for (m, p), op in spec_routes().items()}
    for (method, path), role in router_routes().items():
        op = ops[(method, normalise(path))]
        assert op.get('x-role') == role, f'{method} {path}: x-role {op.get("x-role")}, router {role}'


def test_the_data_plane_is_for_admins():
    """Reading disk contents is reading the guest's data: no lesser role may."""
    for (method, path), role in router_routes().items():
        if path.endswith(('/extents', '/data')):
            assert role == 'admin', f'{method} {path}: {role}'


def test_every_operation_documents_errors_and_ids():
    ids = set()
    for (method, path), op in spec_routes().items():
        assert op.get('operationId'), f'{method} {path} has no operationId'
        assert op['operationId'] not in ids
        ids.add(op['operationId'])
        codes = set(op['responses'])
        assert any(c.startswith('2') for c in codes), f'{method} {path}: no success answer'
        if op.get('security') != []:
            assert '401' in codes, f'{method} {path}: 401 not documented'


def test_conditional_routes_are_described_as_such():
    """A route marked conditional in the table documents its ETag, 304 and 412 and takes
    If-Match and If-None-Match; no other operation claims to."""
    ops = {(m, normalise(p)): op for (m, p), op in spec_routes().items()}
    conditional = {(m, normalise(p)) for (m, p) in conditional_routes()}
    assert ('GET', normalise('/v1/domains/{domain}')) in conditional
    for key, op in ops.items():
        refs = {p.get('$ref', '').rsplit('/', 1)[-1] for p in op.get('parameters', [])}
        codes = set(op['responses'])
        method = key[0]
        if key not in conditional:
            assert not refs & {'IfMatch', 'IfNoneMatch'}, f'{key}: not conditional in the router'
            assert not codes & {'304', '412'}, f'{key}: not conditional in the router'
            continue
        assert {'IfMatch', 'IfNoneMatch'} <= refs, f'{key}: If-Match/If-None-Match missing'
        assert {'400', '412'} <= codes, f'{key}: 400/412 not documented'
        if method == 'GET':
            assert '304' in codes, f'{key}: 304 not documented'
            assert op['responses']['200']['headers']['ETag'] == {
                '$ref': '#/components/headers/ETag'}, key
        else:
            assert method != 'POST', f'{key}: a POST cannot be conditional'
            assert ('GET', key[1]) in conditional, f'{key}: its GET is not conditional'


def test_every_operation_declares_what_any_request_can_get():
    """The daemon refuses before routing (Host, Origin, path length, announced body size; then
    the token, and a write's Content-Type): every operation declares those answers."""
    missing = []
    for path, item in spec()['paths'].items():
        for method, op in item.items():
            if method not in ('get', 'post', 'put', 'patch', 'delete'):
                continue
            want = {'400', '403', '413', '414', '421'}
            if op.get('security') != []:
                want.add('401')
            if method in ('post', 'put', 'patch', 'delete'):
                want.add('415')
            lacks = sorted(want - set(op['responses']))
            if lacks:
                missing.append(f'{method.upper()} {path}: {", ".join(lacks)}')
    assert missing == [], 'undeclared answers:\n' + '\n'.join(missing)


def test_a_daemon_without_tokens_needs_none():
    """--no-auth: the top-level security has the empty alternative."""
    assert {'bearer': []} in spec()['security'] and {} in spec()['security']
