// The snapshots tab: the tree (GET .../snapshots?view=tree) drawn as a tree, the current one
// marked; take (full or disk-only), revert (after a confirmation that names what is lost) and
// delete (one, or with its descendants).

import { h, replace, badge, fmtTime, fmtAge, announce } from './dom.js';
import { api, seg, problemView, isUnavailable } from './api.js';
import { formDialog, textField, radioGroup, selectField } from './dialog.js';
import { followJob, percentOf, isFinal } from './events.js';

/** Every snapshot of a tree, depth first. */
export function walk(nodes, out = []) {
  for (const n of nodes) {
    out.push(n);
    walk(n.children ?? [], out);
  }
  return out;
}

export function snapshotsTab(panel, ctx) {
  const { domainName } = ctx;
  const base = `/v1/domains/${seg(domainName)}/snapshots`;
  const msg = h('div', { 'aria-live': 'polite' });
  const jobSlot = h('div', { class: 'jobs' });
  const treeSlot = h('div', null, h('p', { class: 'muted' }, 'Loading snapshots…'));
  const takeBtn = h('button', { type: 'button', class: 'btn primary', onclick: () => takeDialog() }, 'Take snapshot');
  const sup = ctx.domain?.supports?.snapshots;
  replace(panel,
    h('h2', { class: 'visually-hidden' }, 'Snapshots'),
    h('div', { class: 'toolbar' }, takeBtn, h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'btn', onclick: () => load() }, 'Refresh')),
    sup && !sup.supported ? h('p', { class: 'notice' }, `Snapshots are not supported for this domain: ${sup.reason ?? ''}`) : null,
    msg, jobSlot, treeSlot);

  let roots = [];

  async function load() {
    try {
      const { data } = await api('GET', `${base}?view=tree`, undefined, { signal: ctx.signal });
      roots = data.items ?? [];
      draw();
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(treeSlot, problemView(e, {
        context: isUnavailable(e) ? 'This server does not offer snapshots here.' : 'The snapshots could not be listed.',
      }));
    }
  }

  function draw() {
    if (!roots.length) {
      replace(treeSlot, h('p', { class: 'empty' }, 'No snapshots yet. “Take snapshot” makes the first one.'));
      return;
    }
    const all = walk(roots);
    const current = all.find((s) => s.is_current);
    replace(treeSlot,
      h('p', { class: 'muted small' }, `${all.length} snapshot${all.length === 1 ? '' : 's'}`,
        current ? ['; the domain is at ', h('b', null, current.name)] : '; none is current'),
      h('ul', { class: 'tree', role: 'list', 'aria-label': 'Snapshot tree' }, roots.map(node)));
  }

  function node(s) {
    const mem = s.memory?.location && s.memory.location !== 'none';
    const kids = s.children ?? [];
    const where = [...new Set((s.disks ?? []).map((d) => d.location))].filter(Boolean).join('/');
    return h('li', { 'data-snapshot': s.name },
      h('div', { class: `node${s.is_current ? ' current' : ''}`, 'aria-current': s.is_current ? 'true' : null },
        h('span', { class: 'name' }, s.name),
        s.is_current ? badge('current', 'info', 'The domain is at this snapshot') : null,
        badge(s.kind === 'full' ? 'full' : 'disk only', s.kind === 'full' ? 'ok' : 'muted',
          s.kind === 'full' ? 'Disks and memory' : 'Disks alone'),
        h('span', { class: 'meta' }, mem ? `memory: ${s.memory.location}` : 'no memory',
          where ? ` · disks: ${where}` : '', ` · was ${s.domain_state}`),
        h('span', { class: 'meta', title: fmtTime(s.created_at) }, fmtAge(s.created_at)),
        s.description ? h('span', { class: 'meta' }, `“${s.description}”`) : null,
        h('span', { class: 'node-actions' },
          h('button', { type: 'button', class: 'btn small', onclick: () => revertDialog(s),
            'aria-label': `Revert to ${s.name}` }, 'Revert…'),
          h('button', { type: 'button', class: 'btn small', onclick: () => deleteDialog(s, false),
            'aria-label': `Delete ${s.name}` }, 'Delete…'),
          kids.length ? h('button', { type: 'button', class: 'btn small', onclick: () => deleteDialog(s, true),
            'aria-label': `Delete ${s.name} with its children` }, 'Delete with children…') : null)),
      kids.length ? h('ul', { role: 'list' }, kids.map(node)) : null);
  }

  function say(node) {
    replace(msg, node);
  }

  function done(text) {
    say(h('p', { class: 'result', role: 'status' }, text));
    announce(text);
  }

  /** Shows a job's progress until it ends; resolves with the final job (or null). */
  async function watch(job, label) {
    const bar = h('span', { style: 'width:0%' });
    const line = h('span', null, 'queued');
    const box = h('div', { class: 'job', role: 'group', 'aria-label': label },
      h('div', { class: 'job-line' }, h('span', null, label), line), h('div', { class: 'bar' }, bar));
    jobSlot.append(box);
    const update = (j) => {
      if (!j) return;
      const pct = percentOf(j);
      bar.style.width = `${pct ?? (j.state === 'running' ? 50 : 0)}%`;
      line.textContent = pct === null ? j.state : `${j.state} · ${Math.round(pct)}%`;
    };
    const final = await followJob(job.id, update, job);
    box.remove();
    return final;
  }

  async function takeDialog() {
    const running = ctx.domain?.state === 'running' || ctx.domain?.state === 'paused';
    const body = [
      textField('name', 'Name', { pattern: '[A-Za-z0-9_\\-][A-Za-z0-9._\\-]{0,63}', maxlength: '64' },
        'Optional: generated when empty. Letters, digits, “.”, “_” and “-”.'),
      textField('description', 'Description', { maxlength: '4096' }),
      radioGroup('kind', 'Kind', [
        ['full', 'Full: disks and memory', { hint: running ? 'the guest resumes where it was' : 'the domain is not running: same as disk-only' }],
        ['disk_only', 'Disk-only: disks alone', { hint: running ? 'like pulling the plug' : '' }],
      ], running ? 'full' : 'disk_only'),
    ];
    const r = await formDialog({
      title: `Take a snapshot of ${domainName}`, body, submitLabel: 'Take snapshot',
      submit: async (form) => {
        const f = new FormData(form);
        const req = { kind: f.get('kind') };
        if (f.get('name')) req.name = f.get('name');
        if (f.get('description')) req.description = f.get('description');
        return api('POST', base, req);
      },
    });
    if (!r) return;
    if (r.status === 202) {
      const final = await watch(r.data, 'Taking a snapshot');
      if (final?.state !== 'succeeded') {
        say(problemView(final?.error ?? { title: 'The snapshot job did not finish', detail: final?.state ?? 'unknown' },
          { context: 'The snapshot was not taken.' }));
        load();
        return;
      }
      done(`Snapshot ${final.result?.snapshot ?? ''} taken.`);
    } else {
      done(`Snapshot ${r.data?.name ?? ''} taken.`);
    }
    load();
  }

  async function revertDialog(s) {
    const d = ctx.domain;
    const current = walk(roots).find((x) => x.is_current);
    const live = d?.state === 'running' || d?.state === 'paused';
    const disks = (d?.disks ?? []).map((x) => x.target).join(', ') || 'its disks';
    const lost = [
      h('li', null, `everything written to ${disks} `,
        current && current.name !== s.name ? `since snapshot “${current.name}” (${fmtTime(current.created_at)})`
          : current ? `since this snapshot was taken (${fmtTime(current.created_at)})` : 'since the snapshot was taken',
        ' that no snapshot holds'),
      live ? h('li', null, `the running guest’s memory and state: ${domainName} is ${d.state} now`) : null,
      s.kind !== 'full' && live ? h('li', null, 'this is a disk-only snapshot: the guest will start from its disks as after a power cut') : null,
    ];
    const body = [
      h('p', null, `Revert ${domainName} to snapshot “${s.name}” (${fmtTime(s.created_at)}, ${s.kind === 'full' ? 'full' : 'disk-only'}).`),
      h('div', { class: 'lose' }, h('strong', null, 'This will be lost:'), h('ul', null, lost)),
      h('p', { class: 'hint' }, 'Other snapshots are kept.'),
      selectField('start', 'Afterwards the domain is', [
        ['as_taken', `as it was when taken (${s.domain_state})`], ['running', 'running'], ['paused', 'paused'],
      ], 'as_taken'),
    ];
    const r = await formDialog({
      title: `Revert to “${s.name}”?`, body, submitLabel: `Revert to ${s.name}`, danger: true, focus: 'cancel',
      id: 'revert-dialog',
      submit: async (form) => api('POST', `${base}/${seg(s.name)}/revert`, { start: new FormData(form).get('start') }),
    });
    if (!r) return;
    if (r.status === 202 && r.data?.id) await watch(r.data, `Reverting to ${s.name}`);
    done(`${domainName} reverted to snapshot ${s.name}.`);
    await ctx.reloadDomain();
    load();
  }

  async function deleteDialog(s, children) {
    const names = children ? walk([s]).map((x) => x.name) : [s.name];
    const kids = s.children ?? [];
    const body = [
      h('p', null, children
        ? `Delete snapshot “${s.name}” and its ${names.length - 1} descendant${names.length === 2 ? '' : 's'}:`
        : `Delete snapshot “${s.name}”?`),
      children ? h('ul', null, names.map((n) => h('li', null, n))) : null,
      !children && kids.length ? h('p', { class: 'hint' }, `Its children (${kids.map((k) => k.name).join(', ')}) are kept and move up to its parent.`) : null,
      s.is_current || (children && walk([s]).some((x) => x.is_current))
        ? h('p', { class: 'hint' }, 'The current snapshot is among them; the domain itself is not changed.') : null,
    ];
    const r = await formDialog({
      title: children ? `Delete “${s.name}” with children?` : `Delete “${s.name}”?`, body,
      submitLabel: children ? `Delete ${names.length} snapshots` : `Delete ${s.name}`, danger: true, focus: 'cancel',
      submit: async () => api('DELETE', `${base}/${seg(s.name)}${children ? '?children=true' : ''}`),
    });
    if (!r) return;
    if (r.status === 202 && r.data?.id && !isFinal(r.data)) await watch(r.data, `Deleting ${s.name}`);
    const deleted = r.data?.deleted ?? names;
    done(`Deleted ${deleted.join(', ')}.`);
    load();
  }

  load();
}
