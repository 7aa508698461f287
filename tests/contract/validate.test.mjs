// The validator can fail: answers that break openapi.yaml, and a spec that breaks JSON Schema,
// are reported; answers that keep to it are not.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { validate } from './validate.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SPEC = fs.readFileSync(path.join(ROOT, 'openapi.yaml'), 'utf8');

const problem = (status, code) => ({
    type: `urn:virtvault:problem:${code}`, title: 't', status, detail: 'd', code,
});
const json = (method, p, status, body, headers = {}) => ({
    method, path: p, status, content_type: status >= 400 ? 'application/problem+json'
        : 'application/json', headers, length: JSON.stringify(body).length, body,
});

function violations(...records) {
    return validate(SPEC, records).violations.map((v) => `${v.route} ${v.pointer} ${v.message}`);
}

test('answers that keep to the spec pass', () => {
    assert.deepEqual(violations(
        json('GET', '/healthz', 200, { status: 'ok' }),
        json('GET', '/v1/domains/x/snapshots/s1', 404, problem(404, 'not_found')),
        json('GET', '/v1/nothing/here', 404, problem(404, 'not_found')),
        json('PUT', '/healthz', 405, problem(405, 'method_not_allowed'), { allow: 'GET, HEAD' }),
        // Also `.../snapshots/{name}`, which has DELETE.
        json('PUT', '/v1/domains/x/snapshots/current', 405, problem(405, 'method_not_allowed'),
            { allow: 'GET, HEAD, DELETE' }),
        json('GET', '/v1/domains/x/backups/b/disks/vda/data', 416,
            problem(416, 'range_not_satisfiable'), { 'content-range': 'bytes */1024' }),
    ), []);
});

test('a body of the wrong type is a violation, at its JSON pointer', () => {
    const v = violations(json('GET', '/healthz', 200, { status: 5 }));
    assert.equal(v.length, 2, v); // not a string, and not the constant
    assert.match(v[0], /^\/healthz \/status must be/);
});

test('a flat snapshot with children, or a tree node without, is a violation', () => {
    const snap = {
        name: 's', description: null, parent: null, children_count: 0,
        created_at: '2026-01-01T00:00:00Z', domain_state: 'running', is_current: true,
        kind: 'full', memory: { location: 'internal', file: null }, disks: [],
    };
    const p = '/v1/domains/d/snapshots';
    const page = { next_page_token: null };
    assert.deepEqual(violations(json('GET', p, 200, { items: [snap], ...page })), []);
    assert.deepEqual(violations(json('GET', p, 200, { items: [{ ...snap, children: [] }], ...page })), []);
    assert.notDeepEqual(violations(json('GET', `${p}/s`, 200, { ...snap, children: [] })), []);
    assert.notDeepEqual(violations(json('GET', p, 200, {
        items: [{ ...snap, children: [{ ...snap, extra: 1 }] }], ...page,
    })), []);
});

test('an undeclared status, an unknown route or method, a wrong Allow are violations', () => {
    assert.match(violations(json('GET', '/healthz', 418, problem(418, 'internal')))[0],
        /status 418 is not declared/);
    assert.match(violations(json('GET', '/v1/nothing', 200, {}))[0], /no path of the spec/);
    assert.match(violations(json('POST', '/healthz', 200, {}))[0], /no POST operation/);
    assert.match(violations(json('PUT', '/healthz', 405, problem(405, 'method_not_allowed'),
        { allow: 'GET' }))[0], /Allow: GET, the spec's methods/);
    assert.match(violations(json('PUT', '/healthz', 405, problem(405, 'method_not_allowed')))[0],
        /without an Allow header/);
});

test('a required header missing, or one that breaks its schema', () => {
    const data = '/v1/domains/x/backups/b/disks/vda/data';
    assert.match(violations(json('GET', data, 416, problem(416, 'range_not_satisfiable')))[0],
        /required header Content-Range is missing/);
    assert.match(violations(json('GET', data, 416, problem(416, 'range_not_satisfiable'),
        { 'content-range': 'bytes 0-1/1024' }))[0], /header Content-Range .* must match pattern/);
});

test('a content type the answer does not declare, or a problem with another status', () => {
    const r = json('GET', '/healthz', 200, { status: 'ok' });
    assert.match(violations({ ...r, content_type: 'text/plain' })[0], /content type text\/plain/);
    assert.match(violations(json('GET', '/v1/domains/x', 404, problem(400, 'not_found')))[0],
        /the problem says 400/);
});

test('a schema keyword JSON Schema 2020-12 does not know is a violation', () => {
    const spec = `openapi: 3.1.0
info: {title: t, version: '1'}
paths:
  /x:
    get:
      responses:
        '200':
          description: x
          content:
            application/json:
              schema: {type: object, additionalProperty: false}
`;
    // Found by the lint of every schema, and again by the answer that uses it.
    const { violations: v } = validate(spec, [json('GET', '/x', 200, {})]);
    assert.equal(v.length, 2, v);
    assert.equal(v[0].route, '(spec)');
    assert.match(v[0].message, /does not compile: .*additionalProperty/);
    assert.match(v[1].message, /does not compile: .*additionalProperty/);
    assert.equal(validate(spec, []).violations.length, 1);
});
