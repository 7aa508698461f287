// The checkpoints tab: the chain in order (parents first) with state badges and the data
// changed since each checkpoint; create, delete and reconcile.

import { h, replace, badge, stateBadge, fmtBytes, fmtTime, fmtAge, announce } from './dom.js';
import { api, getAll, seg, problemView, isUnavailable } from './api.js';
import { formDialog, textField } from './dialog.js';
import { followJob, isFinal } from './events.js';

const STATE_HELP = {
  ok: 'in libvirt and in the database, bitmaps present',
  redefined: 'libvirt had lost it; redefined from the database',
  broken: 'its bitmap is gone or inconsistent: no incremental can start from it',
  orphaned: 'in libvirt, not in the database (made outside virtvault)',
};

/** Orders checkpoints along their chain: each root, then its descendants depth first, oldest first. */
export function chainOrder(items) {
  const byName = new Map(items.map((c) => [c.name, c]));
  const kids = new Map();
  const roots = [];
  const byTime = [...items].sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
  for (const c of byTime) {
    if (c.parent && byName.has(c.parent)) {
      if (!kids.has(c.parent)) kids.set(c.parent, []);
      kids.get(c.parent).push(c);
    } else {
      roots.push(c);
    }
  }
  const out = [];
  const visit = (c, depth) => {
    out.push({ c, depth });
    for (const k of kids.get(c.name) ?? []) visit(k, depth + 1);
  };
  roots.forEach((r) => visit(r, 0));
  return out;
}

/** Data changed since a checkpoint: the sum over its disks, null when no disk tells. */
export function changedBytes(c) {
  const sizes = (c.disks ?? []).map((d) => d.size_bytes).filter((x) => typeof x === 'number');
  return sizes.length ? sizes.reduce((a, b) => a + b, 0) : null;
}

export function checkpointsTab(panel, ctx) {
  const { domainName } = ctx;
  const base = `/v1/domains/${seg(domainName)}/checkpoints`;
  const msg = h('div', { 'aria-live': 'polite' });
  const list = h('div', null, h('p', { class: 'muted' }, 'Loading checkpoints…'));
  const sup = ctx.domain?.supports?.checkpoints;
  const adoptBtn = h('button', { type: 'button', class: 'btn', hidden: true, onclick: () => reconcile(true),
    title: 'Take checkpoints made outside virtvault into its database' }, 'Reconcile and adopt orphaned');
  replace(panel,
    h('h2', { class: 'visually-hidden' }, 'Checkpoints'),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'btn primary', onclick: () => createDialog() }, 'Create checkpoint'),
      h('button', { type: 'button', class: 'btn', onclick: () => reconcile(false) }, 'Reconcile'),
      adoptBtn,
      h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'btn', onclick: () => load() }, 'Refresh')),
    sup && !sup.supported ? h('p', { class: 'notice' }, `Checkpoints are not supported for this domain: ${sup.reason ?? ''}`) : null,
    msg, list);

  let items = [];
  let gen = 0;

  async function load() {
    try {
      const data = await getAll(base, { signal: ctx.signal });
      items = data.items ?? [];
      draw();
      sizes(++gen);
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(list, problemView(e, {
        context: isUnavailable(e) ? 'This server does not offer checkpoints here.' : 'The checkpoints could not be listed.',
      }));
    }
  }

  /*
   * The list may leave the sizes out (they cost a query of QEMU per disk): read each
   * checkpoint that lacks them, a few at a time, and fill its cell in.
   */
  async function sizes(my) {
    const todo = items.filter((c) => changedBytes(c) === null);
    const worker = async () => {
      while (todo.length && my === gen && !ctx.signal.aborted) {
        const c = todo.shift();
        const cell = list.querySelector(`li[data-checkpoint="${CSS.escape(c.name)}"] .changed`);
        try {
          const { data } = await api('GET', `${base}/${seg(c.name)}`, undefined, { signal: ctx.signal, noPrompt: true });
          if (cell && my === gen) replace(cell, changedText(data));
        } catch (e) {
          if (e.name !== 'AbortError' && cell) replace(cell, h('span', { title: e.problem?.detail ?? e.message }, 'unknown'));
        }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  }

  function changedText(c) {
    const changed = changedBytes(c);
    const perDisk = (c.disks ?? []).filter((d) => typeof d.size_bytes === 'number')
      .map((d) => `${d.target} ${fmtBytes(d.size_bytes)}`).join(', ');
    return [h('b', null, changed === null ? 'unknown' : fmtBytes(changed)),
      perDisk && (c.disks ?? []).length > 1 ? ` (${perDisk})` : ''];
  }

  function draw() {
    const orphans = items.filter((c) => c.state === 'orphaned').length;
    adoptBtn.hidden = !orphans;
    if (!items.length) {
      replace(list, h('p', { class: 'empty' }, 'No checkpoints yet. A backup or “Create checkpoint” makes one.'));
      return;
    }
    const ordered = chainOrder(items);
    replace(list,
      h('p', { class: 'muted small' }, `${items.length} checkpoint${items.length === 1 ? '' : 's'}, oldest first. `,
        'Each counts the data written since it was made: an incremental backup from it copies that much.'),
      h('ol', { class: 'chain', 'aria-label': 'Checkpoint chain, oldest first' }, ordered.map(({ c }) => {
        const known = changedBytes(c) !== null;
        return h('li', { 'data-checkpoint': c.name },
          h('div', { class: `node ${c.state}` },
            h('span', { class: 'name' }, c.name),
            stateBadge(c.state, STATE_HELP[c.state]),
            h('span', { class: 'meta' }, c.parent ? `after ${c.parent}` : 'first of its chain'),
            h('span', { class: 'meta', title: fmtTime(c.created_at) }, fmtAge(c.created_at)),
            h('span', { class: 'meta' }, 'changed since: ',
              h('span', { class: 'changed' }, known ? changedText(c) : '…')),
            c.in_libvirt === false ? badge('not in libvirt', 'warn', 'libvirt does not know it right now') : null,
            c.reason ? h('span', { class: 'meta' }, c.reason) : null,
            c.description ? h('span', { class: 'meta' }, `“${c.description}”`) : null,
            h('span', { class: 'node-actions' },
              h('button', { type: 'button', class: 'btn small', 'aria-label': `Delete checkpoint ${c.name}`,
                onclick: () => deleteDialog(c) }, 'Delete…'))));
      })));
  }

  function done(node, text) {
    replace(msg, node);
    if (text) announce(text);
  }

  async function createDialog() {
    const r = await formDialog({
      title: `Create a checkpoint of ${domainName}`,
      body: [
        textField('name', 'Name', { maxlength: '64' }, 'Optional: generated when empty.'),
        textField('description', 'Description', { maxlength: '4096' }),
        h('p', { class: 'hint' }, 'Every disk that can carry a dirty bitmap gets one; changes are counted from now.'),
      ],
      submitLabel: 'Create checkpoint',
      submit: async (form) => {
        const f = new FormData(form);
        const req = {};
        if (f.get('name')) req.name = f.get('name');
        if (f.get('description')) req.description = f.get('description');
        return api('POST', base, req);
      },
    });
    if (!r) return;
    if (r.status === 202 && r.data?.id && !isFinal(r.data)) await followJob(r.data.id, null, r.data);
    const text = `Checkpoint ${r.data?.name ?? ''} created.`;
    done(h('p', { class: 'result', role: 'status' }, text), text);
    load();
  }

  async function deleteDialog(c) {
    const later = chainOrder(items).map((x) => x.c).filter((x) => x.parent === c.name).map((x) => x.name);
    const r = await formDialog({
      title: `Delete checkpoint “${c.name}”?`,
      body: [
        h('p', null, `Its bitmaps are removed from ${domainName}’s disks and its record from the database.`),
        h('p', { class: 'hint' }, 'No incremental or differential backup can then start from it.',
          later.length ? ` ${later.join(', ')} ${later.length === 1 ? 'stays and takes' : 'stay and take'} its place in the chain.` : ''),
      ],
      submitLabel: `Delete ${c.name}`, danger: true, focus: 'cancel',
      submit: async () => api('DELETE', `${base}/${seg(c.name)}`),
    });
    if (!r) return;
    const text = `Checkpoint ${c.name} deleted.`;
    done(h('p', { class: 'result', role: 'status' }, text), text);
    load();
  }

  async function reconcile(adopt) {
    done(h('p', { class: 'muted', role: 'status' }, 'Reconciling the database with libvirt…'));
    try {
      const { data } = await api('POST', `${base}:reconcile`, adopt ? { adopt: true } : {});
      const actions = data.actions ?? [];
      const text = `Reconciled: ${data.checked ?? items.length} checked, ${actions.length} change${actions.length === 1 ? '' : 's'}.`;
      done(h('div', { class: 'result', role: 'status', id: 'reconcile-result' },
        h('h3', null, 'Reconcile result'),
        h('p', null, text),
        actions.length ? h('ul', null, actions.map((a) => h('li', null,
          h('b', null, a.checkpoint), ': ', a.action, a.detail ? ` — ${a.detail}` : ''))) : null), text);
    } catch (e) {
      done(problemView(e, { context: 'Reconcile failed.' }));
    }
    load();
  }

  load();
}
