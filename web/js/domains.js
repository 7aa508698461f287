// The domains page: one row per domain with its state, disks, last backup and the health of
// its checkpoint chain, filtered by name.
//
// The table is drawn from GET /v1/domains alone, at once; the last backup and the checkpoint
// health of each domain then arrive a few requests at a time and fill their cells in, so that
// the page is usable before them even with hundreds of domains.

import { h, replace, badge, stateBadge, fmtAge } from './dom.js';
import { get, getAll, seg, problemView, ApiError } from './api.js';
import { onEvent } from './events.js';

const CONCURRENCY = 4;

/** Health of a checkpoint list: [word, tone, title]. */
export function chainHealth(items) {
  if (!items.length) return ['none', 'muted', 'no checkpoints'];
  const count = (s) => items.filter((c) => c.state === s).length;
  const broken = count('broken');
  const orphaned = count('orphaned');
  const redefined = count('redefined');
  const n = `${items.length} checkpoint${items.length === 1 ? '' : 's'}`;
  if (broken) return [`${broken} broken`, 'bad', `${n}; ${broken} broken: incrementals that depend on them are refused`];
  if (orphaned) return [`${orphaned} orphaned`, 'warn', `${n}; ${orphaned} orphaned`];
  if (redefined) return ['ok', 'ok', `${n}; ${redefined} redefined from the database`];
  return ['ok', 'ok', n];
}

/** The newest backup of a list (by started_at), or null. */
export function lastBackup(items) {
  let best = null;
  for (const b of items) if (!best || (b.started_at ?? '') > (best.started_at ?? '')) best = b;
  return best;
}

export function domainsView(main, { query }, { signal }) {
  const filterValue = query.get('q') ?? '';
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading domains…');
  const filter = h('input', {
    type: 'search', id: 'domain-filter', class: 'filter', value: filterValue,
    placeholder: 'Filter by name', 'aria-controls': 'domains-table', autocomplete: 'off',
  });
  const refresh = h('button', { type: 'button', class: 'btn', onclick: () => load() }, 'Refresh');
  const tableSlot = h('div');
  replace(main,
    h('h1', { tabindex: '-1' }, 'Domains'),
    h('div', { class: 'toolbar' },
      h('label', { for: 'domain-filter', class: 'visually-hidden' }, 'Filter domains by name'),
      filter, h('span', { class: 'spacer' }), refresh),
    status, tableSlot);

  let rows = [];
  const applyFilter = () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const r of rows) {
      const hit = !q || r.name.toLowerCase().includes(q);
      r.tr.hidden = !hit;
      if (hit) shown++;
    }
    status.textContent = rows.length
      ? (q ? `${shown} of ${rows.length} domains match “${filter.value.trim()}”` : `${rows.length} domains`)
      : 'No domains on this host.';
  };
  filter.addEventListener('input', () => {
    applyFilter();
    const q = filter.value.trim();
    history.replaceState(null, '', q ? `#/?q=${encodeURIComponent(q)}` : '#/');
  });

  let gen = 0;
  async function load() {
    const my = ++gen;
    let data;
    const asked = performance.now();
    try {
      data = await getAll('/v1/domains', { signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(tableSlot, problemView(e, { context: 'The domains could not be listed.' }));
      status.textContent = '';
      return;
    }
    if (my !== gen) return;
    const answered = performance.now();
    const items = data.items ?? [];
    rows = items.map(row);
    const tbody = h('tbody', { role: 'rowgroup' }, rows.map((r) => r.tr));
    // The rows are laid out as grids (see app.css), so the table says what it is explicitly.
    replace(tableSlot, items.length ? h('table', { class: 'grid', id: 'domains-table', role: 'table' },
      h('caption', { class: 'visually-hidden' }, 'Domains of this host'),
      h('thead', { role: 'rowgroup' }, h('tr', { role: 'row' },
        ['Name', 'State', 'Disks', 'Last backup', 'Checkpoint chain'].map((t) =>
          h('th', { scope: 'col', role: 'columnheader', class: t === 'Disks' ? 'num' : null }, t)))),
      tbody) : h('p', { class: 'empty' }, 'libvirt knows no domain on this host.'));
    applyFilter();
    // Render times, for the performance test and for anyone curious (Performance panel):
    // from the answer to the frame painted (the UI's own work), and from the request.
    requestAnimationFrame(() => setTimeout(() => {
      const now = performance.now();
      window.virtvaultTimings = { domainsRender: now - answered, domainsRequest: now - asked,
        domainsRenderedAt: now, domains: items.length };
      performance.measure('virtvault:domains-render', { start: answered, end: now });
    }, 0));
    fillDetails(rows, my);
  }

  function row(d) {
    const backupCell = h('td', { 'data-label': 'Last backup', class: 'muted', role: 'cell' }, '…');
    const cpCell = h('td', { 'data-label': 'Checkpoints', class: 'muted', role: 'cell' }, '…');
    const tr = h('tr', { 'data-domain': d.name, role: 'row' },
      h('th', { scope: 'row', 'data-label': 'Name', role: 'rowheader' },
        h('a', { href: `#/d/${encodeURIComponent(d.name)}` }, d.name)),
      h('td', { 'data-label': 'State', role: 'cell' }, stateBadge(d.state)),
      h('td', { 'data-label': 'Disks', class: 'num', role: 'cell' }, String(d.disks?.length ?? 0)),
      backupCell, cpCell);
    return { name: d.name, d, tr, backupCell, cpCell };
  }

  async function fillDetails(list, my) {
    let next = 0;
    const worker = async () => {
      while (next < list.length && my === gen && !signal.aborted) {
        const r = list[next++];
        await Promise.all([fillBackup(r), fillCheckpoints(r)]);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  }

  async function fillBackup(r) {
    if (r.d.supports && !r.d.supports.push_backup?.supported && !r.d.supports.pull_backup?.supported) {
      replace(r.backupCell, h('span', { title: r.d.supports.push_backup?.reason ?? '' }, 'not supported'));
      return;
    }
    try {
      const data = await get(`/v1/domains/${seg(r.name)}/backups?limit=1`, { signal, noPrompt: true });
      const b = lastBackup(data.items ?? []);
      r.backupCell.className = '';
      replace(r.backupCell, b
        ? [fmtAge(b.finished_at ?? b.started_at), ' ', stateBadge(b.state, b.error?.detail ?? `${b.type} ${b.mode}`)]
        : h('span', { class: 'muted' }, 'never'));
    } catch (e) {
      if (e.name === 'AbortError') return;
      unavailable(r.backupCell, e);
    }
  }

  async function fillCheckpoints(r) {
    try {
      const data = await getAll(`/v1/domains/${seg(r.name)}/checkpoints`, { signal, noPrompt: true });
      const [word, tone, title] = chainHealth(data.items ?? []);
      r.cpCell.className = '';
      replace(r.cpCell, badge(word, tone, title));
    } catch (e) {
      if (e.name === 'AbortError') return;
      unavailable(r.cpCell, e);
    }
  }

  function unavailable(cell, e) {
    const p = e instanceof ApiError ? e.problem : { title: 'Error', detail: e.message };
    replace(cell, h('span', { class: 'muted', title: `${p.title}: ${p.detail ?? ''}` }, 'n/a'));
  }

  // Domain events (started, stopped, defined...) redraw the list, at most every 2 s.
  let pending = 0;
  const off = onEvent(({ event, data }) => {
    if (!String(event).startsWith('domain') && !(data && data.domain && data.event)) return;
    if (pending) return;
    pending = setTimeout(() => { pending = 0; load(); }, 2000);
  });

  load();
  return () => { off(); clearTimeout(pending); };
}
