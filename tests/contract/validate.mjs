// Holds recorded answers of the daemon against openapi.yaml.
//
//   node tests/contract/validate.mjs openapi.yaml out/test/records/*/*.jsonl
//
// Each record is one JSON line, as tests/integration/client.py writes it with VV_RECORD_DIR:
// {"method", "path" (with query), "status", "content_type", "headers", "length", "body"?,
//  "test"}. For each one:
//   - the path must match a path template of the spec (the most literal one that has the
//     method, as the daemon's router picks), and the method an operation of it (HEAD is held
//     against `head`, else `get`). Some answers need no operation of their own: a 405 for a
//     method the path does not have, held against components/responses/MethodNotAllowed,
//     whose `Allow` must name exactly the methods of every template the path matches (HEAD
//     along with GET); and what any request can get before it is routed (BEFORE_ROUTING:
//     404 on a path the spec does not know, 400, 403, 413, 414, 421), held against the
//     response of components/responses the table names;
//   - the status must be declared by the operation (the status itself, then `4XX`-style
//     ranges, then `default`);
//   - the content type must be declared for that answer, or the answer must be empty when
//     none is; a JSON body (application/json, */*+json) must validate against the declared
//     schema with Ajv's JSON Schema 2020-12 validator (OpenAPI 3.1 schemas are 2020-12),
//     `#/components/...` references resolved in the spec itself; a problem's `status` must
//     be the answer's status. Other bodies (octet-stream, text, XML, ranges) are checked for
//     status and content type only;
//   - every header the answer declares `required` must be present, and every declared header
//     present must validate against its schema.
// Every schema of the spec is compiled in strict mode, whether an answer used it or not: a
// keyword JSON Schema 2020-12 does not know (a misspelt `additionalProperty`, say) is a
// violation of its own (route `(spec)`).
//
// Prints each distinct violation once (route, status, JSON pointer into the body, message,
// how many answers and one test that saw it), then `N answers, N violations` and, last,
// `N passed, N failed` over the distinct (method, route, status) cases. Exit 1 on any
// violation, 2 on bad usage.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

const SPEC_ID = 'https://virtvault.invalid/openapi.yaml';
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
// Top-level fields of an OpenAPI document and OpenAPI's own schema keywords: known to Ajv
// as annotations, so that the spec compiles in strict mode.
const OPENAPI_WORDS = ['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths', 'webhooks',
    'components', 'security', 'tags', 'externalDocs', 'discriminator', 'xml', 'example'];

// Answers a request gets before it is routed, whatever its path or method (openapi.yaml,
// info): held against these responses of components when the spec has no operation for them.
const BEFORE_ROUTING = {
    400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound', 413: 'PayloadTooLarge',
    414: 'UriTooLong', 421: 'MisdirectedRequest',
};

function short(text, max = 120) {
    text = String(text);
    return text.length <= max ? text : `${text.slice(0, max)}...(${text.length} characters)`;
}

function pointerOf(parts) {
    return parts.map((p) => encodeURIComponent(String(p).replace(/~/g, '~0').replace(/\//g, '~1')))
        .join('/');
}

function extensionWords(node, found = new Set()) {
    if (Array.isArray(node)) {
        for (const v of node) extensionWords(v, found);
    } else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
            if (k.startsWith('x-')) found.add(k);
            extensionWords(v, found);
        }
    }
    return found;
}

function templateRegex(template) {
    const src = template.split(/(\{[^}]+\})/).map((part) =>
        part.startsWith('{') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('');
    return new RegExp(`^${src}$`);
}

// The spec, loaded once: its paths as regexes and an Ajv that knows the whole document.
export class Contract {
    constructor(specText) {
        this.spec = YAML.parse(specText);
        this.ajv = new Ajv2020({
            strict: true, strictTypes: false, strictTuples: false, strictRequired: false,
            allErrors: true, validateFormats: true,
        });
        addFormats(this.ajv);
        this.ajv.addVocabulary([...OPENAPI_WORDS, ...extensionWords(this.spec)]);
        this.ajv.addSchema({ ...this.spec, $id: SPEC_ID });
        this.routes = Object.keys(this.spec.paths || {}).map((t) => ({
            template: t, re: templateRegex(t),
            // The template with the most literal characters wins (`snapshots/current` over
            // `snapshots/{name}`).
            score: t.replace(/\{[^}]+\}/g, '').length,
        }));
        this.validators = new Map();
    }

    // The node at a JSON pointer (as an array of parts) of the spec, following a `$ref` there.
    resolve(parts) {
        let node = this.spec;
        for (const p of parts) node = node?.[p];
        if (node && typeof node.$ref === 'string' && node.$ref.startsWith('#/')) {
            const refParts = node.$ref.slice(2).split('/')
                .map((p) => decodeURIComponent(p).replace(/~1/g, '/').replace(/~0/g, '~'));
            return this.resolve(refParts);
        }
        return { node, parts };
    }

    // The templates that match urlPath, the most literal first.
    candidates(urlPath) {
        return this.routes.filter((r) => r.re.test(urlPath)).sort((a, b) => b.score - a.score)
            .map((r) => r.template);
    }

    // The operation's name for a method on a path item (HEAD falls back to GET), or null.
    opName(item, method) {
        const name = method === 'head' && !item.head ? 'get' : method;
        return METHODS.includes(name) && item[name] ? name : null;
    }

    // A compiled validator for the schema at parts, or throws the compile error.
    validator(parts) {
        const key = pointerOf(parts);
        if (!this.validators.has(key)) {
            let v;
            try {
                v = this.ajv.compile({ $ref: `${SPEC_ID}#/${key}` });
            } catch (e) {
                v = e;
            }
            this.validators.set(key, v);
        }
        const v = this.validators.get(key);
        if (v instanceof Error) throw v;
        return v;
    }

    // Every schema of the document, compiled in strict mode, whether an answer used it or not:
    // those of components/schemas and every `schema` of a parameter, header, request or
    // response. Returns [{pointer, message}] for those that do not compile.
    lint() {
        const found = [];
        const walk = (node, parts) => {
            if (Array.isArray(node)) {
                node.forEach((v, i) => walk(v, [...parts, i]));
                return;
            }
            if (!node || typeof node !== 'object') return;
            for (const [k, v] of Object.entries(node)) {
                if (k === 'schema' && v && typeof v === 'object') found.push([...parts, k]);
                else walk(v, [...parts, k]);
            }
        };
        walk(this.spec.paths, ['paths']);
        const { schemas, ...others } = this.spec.components || {};
        walk(others, ['components']);
        for (const name of Object.keys(schemas || {})) found.push(['components', 'schemas', name]);
        const out = [];
        for (const parts of found) {
            try {
                this.validator(parts);
            } catch (e) {
                out.push({ pointer: `#/${pointerOf(parts)}`, message: `does not compile: ${e.message}` });
            }
        }
        return out;
    }

    // Validates value against the schema at parts; returns [{pointer, message}].
    check(parts, value) {
        let v;
        try {
            v = this.validator(parts);
        } catch (e) {
            return [{ pointer: '(schema)', message: `the schema does not compile: ${e.message}` }];
        }
        if (v(value)) return [];
        return v.errors.map((e) => ({
            pointer: e.instancePath || '/',
            message: `${e.message}${e.params && Object.keys(e.params).length
                ? ' ' + JSON.stringify(e.params) : ''} (schema ${decodeURIComponent(e.schemaPath).replace(SPEC_ID, "")})`,
        }));
    }

    // All violations of one record: [{route, pointer, message}].
    checkRecord(rec) {
        const out = [];
        const fail = (pointer, message) => out.push({ pointer, message });
        const method = String(rec.method || '').toLowerCase();
        const urlPath = String(rec.path || '').split('?')[0];
        const status = Number(rec.status);
        // The most literal template that has the method, else the most literal one: as the
        // router does, `DELETE .../snapshots/current` is `.../snapshots/{name}`'s.
        const cands = this.candidates(urlPath);
        const template = cands.find((t) => this.opName(this.spec.paths[t], method)) ?? cands[0] ?? null;
        let respParts = null;

        if (template === null) {
            if (!(status in BEFORE_ROUTING)) {
                fail('', `no path of the spec matches ${short(urlPath)}`);
                return { route: short(urlPath), out };
            }
            respParts = ['components', 'responses', BEFORE_ROUTING[status]];
        } else {
            const item = this.resolve(['paths', template]).node;
            const opName = this.opName(item, method);
            const op = opName ? item[opName] : undefined;
            if (op) {
                const responses = op.responses || {};
                const key = [String(status), `${String(status)[0]}XX`, 'default']
                    .find((k) => k in responses);
                if (key === undefined) {
                    fail('', `status ${status} is not declared (declared: ${Object.keys(responses).join(', ')})`);
                    return { route: template, out };
                }
                respParts = ['paths', template, opName, 'responses', key];
            } else if (status === 405) {
                respParts = ['components', 'responses', 'MethodNotAllowed'];
                // The methods of every template the path matches.
                const want = new Set(cands.flatMap((t) => METHODS.filter((m) => this.spec.paths[t][m]))
                    .map((m) => m.toUpperCase()));
                if (want.has('GET')) want.add('HEAD');
                const allow = rec.headers?.allow;
                if (allow === undefined) {
                    fail('', '405 without an Allow header');
                } else {
                    const got = new Set(allow.split(',').map((m) => m.trim().toUpperCase()).filter(Boolean));
                    const same = got.size === want.size && [...got].every((m) => want.has(m));
                    if (!same) {
                        fail('', `Allow: ${allow}, the spec's methods for the path: ${[...want].join(', ')}`);
                    }
                }
            } else if (status in BEFORE_ROUTING) {
                respParts = ['components', 'responses', BEFORE_ROUTING[status]];
            } else {
                fail('', `the spec has no ${method.toUpperCase()} operation on ${template}`);
                return { route: template, out };
            }
        }
        const route = template ?? short(urlPath);
        const { node: resp, parts } = this.resolve(respParts);
        if (!resp) {
            fail('', `the spec has no ${respParts.join('/')}`);
            return { route, out };
        }
        this.checkHeaders(rec, resp, parts, fail);
        this.checkContent(rec, resp, parts, method, status, fail);
        return { route, out };
    }

    checkHeaders(rec, resp, parts, fail) {
        const got = rec.headers || {};
        for (const name of Object.keys(resp.headers || {})) {
            if (name.toLowerCase() === 'content-type') continue;
            const { node: h, parts: hParts } = this.resolve([...parts, 'headers', name]);
            const value = got[name.toLowerCase()];
            if (value === undefined) {
                if (h?.required) fail('', `required header ${name} is missing`);
                continue;
            }
            if (!h?.schema) continue;
            const type = h.schema.type;
            let v = value;
            if ((type === 'integer' || type === 'number') && /^-?\d+(\.\d+)?$/.test(value)) v = Number(value);
            for (const e of this.check([...hParts, 'schema'], v)) {
                fail(`header ${name}${e.pointer === '/' ? '' : e.pointer}`, `${JSON.stringify(value)}: ${e.message}`);
            }
        }
    }

    checkContent(rec, resp, parts, method, status, fail) {
        const content = resp.content || {};
        const media = String(rec.content_type || '').split(';')[0].trim().toLowerCase();
        const length = Number(rec.length || 0);
        if (Object.keys(content).length === 0) {
            if (length > 0) fail('', `a ${length}-byte body (${media || 'no content type'}), the spec declares none`);
            return;
        }
        if (method === 'head' || status === 304) return;
        if (!media) {
            fail('', `no content type, the spec declares ${Object.keys(content).join(', ')}`);
            return;
        }
        const declared = Object.keys(content).find((m) => m.toLowerCase() === media)
            ?? Object.keys(content).find((m) => m.toLowerCase() === `${media.split('/')[0]}/*`)
            ?? Object.keys(content).find((m) => m === '*/*');
        if (declared === undefined) {
            fail('', `content type ${media} is not declared (declared: ${Object.keys(content).join(', ')})`);
            return;
        }
        const isJson = media === 'application/json' || media.endsWith('+json');
        if (!isJson) return;
        if (rec.body_error || (!('body' in rec) && length > 0)) {
            fail('', `the ${media} body is not JSON`);
            return;
        }
        if (!('body' in rec)) {
            fail('', `an empty ${media} answer`);
            return;
        }
        if (content[declared].schema !== undefined) {
            for (const e of this.check([...parts, 'content', declared, 'schema'], rec.body)) {
                fail(e.pointer, e.message);
            }
        }
        if (media === 'application/problem+json' && rec.body?.status !== status) {
            fail('/status', `the problem says ${JSON.stringify(rec.body?.status)}, the answer ${status}`);
        }
    }
}

// Validates records against the spec text; returns {answers, violations: [...], cases: Map}.
export function validate(specText, records) {
    const contract = new Contract(specText);
    const violations = [];
    const cases = new Map();
    for (const v of contract.lint()) {
        violations.push({ ...v, route: '(spec)', rec: { method: 'LINT', path: v.pointer, status: '' } });
        cases.set(`LINT ${v.pointer}`, 1);
    }
    for (const rec of records) {
        const { route, out } = contract.checkRecord(rec);
        const caseKey = `${String(rec.method).toUpperCase()} ${route} ${rec.status}`;
        cases.set(caseKey, (cases.get(caseKey) || 0) + out.length);
        for (const v of out) violations.push({ ...v, route, rec });
    }
    return { answers: records.length, violations, cases };
}

export function readRecords(files) {
    const records = [];
    for (const f of files) {
        const lines = fs.readFileSync(f, 'utf8').split('\n');
        lines.forEach((line, i) => {
            if (!line.trim()) return;
            try {
                records.push(JSON.parse(line));
            } catch (e) {
                throw new Error(`${f}:${i + 1}: not a JSON line: ${e.message}`);
            }
        });
    }
    return records;
}

function main(argv) {
    if (argv.length < 1) {
        console.error('usage: validate.mjs openapi.yaml [records.jsonl...]');
        return 2;
    }
    const [specFile, ...files] = argv;
    const { answers, violations, cases } = validate(fs.readFileSync(specFile, 'utf8'),
        readRecords(files));
    // One line per distinct violation, with how often and where it was seen.
    const groups = new Map();
    for (const v of violations) {
        if (v.route === '(spec)') {
            console.log(`violation: (spec) ${decodeURIComponent(v.pointer)}  ${v.message}`);
            continue;
        }
        const key = `${String(v.rec.method).toUpperCase()} ${v.route} ${v.rec.status}  ${v.pointer}  ${v.message}`;
        const g = groups.get(key) || { n: 0, rec: v.rec };
        g.n += 1;
        groups.set(key, g);
    }
    for (const [key, g] of [...groups].sort()) {
        console.log(`violation: ${key}  [x${g.n}; e.g. ${String(g.rec.method).toUpperCase()} ${short(g.rec.path)}`
            + `${g.rec.test ? ` in ${g.rec.test}` : ''}]`);
    }
    const failed = [...cases.values()].filter((n) => n > 0).length;
    const lints = violations.length - [...groups.values()].reduce((n, g) => n + g.n, 0);
    console.log(`${answers} answers, ${violations.length} violations (${groups.size + lints} distinct)`);
    if (answers === 0) console.log('no answers were recorded: nothing was checked');
    // A case is one (method, route, status); it fails when any of its answers has a violation.
    console.log(`${cases.size - failed} passed, ${failed + (answers === 0 ? 1 : 0)} failed`);
    return violations.length === 0 && answers > 0 ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    process.exitCode = main(process.argv.slice(2));
}
