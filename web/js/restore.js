// What the restore dialogs of the backups tab and of the Remotes page share: the optional
// "Define a new domain named" field, its part of the request (define: {name}), and the
// result: the restored disks and the domain defined on them.

import { h } from './dom.js';
import { field } from './dialog.js';

/** The optional define field, with a place for the API's error about it: field()'s nodes. */
export function defineField() {
  return field('define', 'Define a new domain named', { maxlength: '64', autocomplete: 'off', spellcheck: 'false' },
    'Optional: a domain from the backup’s XML with the restored disks.').nodes;
}

/** Adds define: {name} to the restore request req when form's define field is filled; returns req. */
export function withDefine(req, form) {
  const name = String(new FormData(form).get('define') ?? '').trim();
  if (name) req.define = { name };
  return req;
}

/**
 * The restore job's result as a status box (element id): text, each disk's file, the domain
 * defined on them (a link to it, with what was changed from the original), else the raw result.
 */
export function restoreResultView(id, text, result) {
  const disks = result?.disks ?? [];
  const dom = result?.domain;
  const name = dom ? String(dom.name ?? dom) : null;
  const changes = dom?.changes ?? [];
  return h('div', { class: 'result', role: 'status', id },
    h('h3', null, 'Restore result'), h('p', null, text),
    disks.length ? h('dl', { class: 'kv' }, disks.map((d) => [h('dt', null, d.target ?? 'disk'),
      h('dd', { class: 'mono' }, [d.path ?? d.file ?? '', d.detail ? ` ${d.detail}` : ''].join(''))])) : null,
    name ? h('p', { 'data-defined-domain': name }, 'Defined domain: ', h('a', { href: `#/d/${encodeURIComponent(name)}` }, name)) : null,
    changes.length ? h('ul', { class: 'small', 'aria-label': `Changes made for ${name}` },
      changes.map((c) => h('li', null, c.detail ? `${c.what}: ${c.detail}` : c.what))) : null,
    result && !disks.length && !dom ? h('pre', { class: 'small mono' }, JSON.stringify(result, null, 2)) : null);
}
