// What policies mean for one domain: the protection line under its facts (policy, last success,
// next run, an overdue badge) and the retention tab, a simulator that asks the daemon which of
// the domain's real backups a retention keeps (POST /v1/retention:simulate, the pruner's
// rule) and draws them on a time axis: kept, removed, and merged (removed, but data a kept
// incremental still needs, so pruning merges it into that backup).

import { h, replace, badge, fmtTime, fmtAge, shortId, announce } from './dom.js';
import { api, seg, problemView } from './api.js';
import { listPolicies, memberOf, scheduleText, runView, KEEPS } from './policies.js';

/** Fills el with the protection line of domain; resolves with {policy, member} or null. */
export async function protectionLine(el, domain, signal) {
  let found = null;
  try {
    found = memberOf(await listPolicies({ signal, noPrompt: true }), domain);
  } catch (e) {
    if (e.name === 'AbortError') return null;
    const t = e.problem ? `${e.problem.title}: ${e.problem.detail ?? ''}` : String(e.message);
    replace(el, h('span', { class: 'muted', title: t }, 'Protection: unknown (the policies could not be read)'));
    return null;
  }
  if (!found) {
    replace(el, h('span', null, 'Protection: ', badge('no policy', 'warn', 'No policy backs this domain up on a schedule')),
      ' ', h('a', { href: '#/policies' }, 'Policies'));
    return null;
  }
  const { policy: p, member: m } = found;
  replace(el,
    h('span', null, 'Policy ', h('a', { href: '#/policies', 'data-policy': p.name }, h('b', null, p.name)),
      h('span', { class: 'muted mono' }, ` (${scheduleText(p.schedule)})`), p.enabled ? null : [' ', badge('disabled', 'muted')]),
    h('span', null, 'Last success ', m.last_success
      ? h('b', { title: fmtTime(m.last_success), 'data-field': 'last-success' }, fmtAge(m.last_success))
      : h('b', { 'data-field': 'last-success' }, 'never')),
    h('span', null, 'Last run ', runView(m.last_run)),
    h('span', null, 'Next run ', h('b', { title: fmtTime(m.next_run), 'data-field': 'next-run' }, p.enabled ? fmtTime(m.next_run) : '—')),
    m.overdue ? badge('overdue', 'bad', `No successful backup within twice the schedule’s period${m.protected_until ? `; protected until ${fmtTime(m.protected_until)}` : ''}`)
      : m.protected_until ? h('span', { class: 'muted' }, `protected until ${fmtTime(m.protected_until)}`) : null);
  return found;
}

/** Every backup of a domain (all pages). */
async function allBackups(domain, signal) {
  const out = [];
  let token = null;
  do {
    const q = token ? `?limit=500&page_token=${encodeURIComponent(token)}` : '?limit=500';
    const { data } = await api('GET', `/v1/domains/${seg(domain)}/backups${q}`, undefined, { signal });
    out.push(...(data.items ?? []));
    token = data.next_page_token ?? null;
  } while (token);
  return out;
}

/**
 * Splits backups (oldest first) by the kept set: each gets fate 'kept', 'removed' or 'merged'
 * (removed, but an ancestor of a kept backup), and a kept one whose parent goes gets
 * mergeFrom, the removed ancestors whose data prune merges into it.
 */
export function classify(backups, keptIds) {
  const byId = new Map(backups.map((b) => [b.id, b]));
  const out = new Map(backups.map((b) => [b.id, { b, fate: keptIds.has(b.id) ? 'kept' : 'removed', mergeFrom: [] }]));
  for (const x of out.values()) {
    if (x.fate !== 'kept') continue;
    let parent = byId.get(x.b.parent_id);
    while (parent && !keptIds.has(parent.id)) {
      out.get(parent.id).fate = 'merged';
      x.mergeFrom.push(parent.id);
      parent = byId.get(parent.parent_id);
    }
  }
  return out;
}

const NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const FATE_WORD = { kept: 'kept', removed: 'removed', merged: 'merged' };

/** The time axis: one row per chain, a mark per backup at its start time, parents linked. */
function axis(rowsAnyOrder, { width = 720 } = {}) {
  // Oldest first: the marks are placed, and pushed apart, from left to right.
  const rows = [...rowsAnyOrder].sort((a, b) => Date.parse(a.b.started_at) - Date.parse(b.b.started_at));
  const chains = [...new Set(rows.map((r) => r.b.chain_id ?? 'none'))];
  const pad = { l: 96, r: 24, t: 16, b: 40 };
  const lane = 34;
  const height = pad.t + chains.length * lane + pad.b;
  const w = width - pad.l - pad.r;
  const times = rows.map((r) => Date.parse(r.b.started_at));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  // By time, then pushed apart so that marks of the same minute stay distinct.
  let xs = times.map((t) => (t1 > t0 ? ((t - t0) / (t1 - t0)) * w : w / 2));
  const gap = 18;
  for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1] + gap) xs[i] = xs[i - 1] + gap;
  const over = xs.length ? xs[xs.length - 1] : 0;
  if (over > w) xs = xs.map((x) => (x * w) / over);
  xs = xs.map((x) => pad.l + x);
  const y = (r) => pad.t + chains.indexOf(r.b.chain_id ?? 'none') * lane + lane / 2;
  const counts = { kept: 0, removed: 0, merged: 0 };
  rows.forEach((r) => { counts[r.fate]++; });
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart retention-axis', role: 'img',
    'aria-labelledby': 'ret-title ret-desc', id: 'retention-axis' });
  svg.append(s('title', { id: 'ret-title' }, 'Backups on a time axis: which the retention keeps, removes and merges'));
  svg.append(s('desc', { id: 'ret-desc' }, `${rows.length} backups from ${fmtTime(rows[0]?.b.started_at)} to ` +
    `${fmtTime(rows[rows.length - 1]?.b.started_at)}: ${counts.kept} kept, ${counts.removed} removed, ${counts.merged} merged.`));
  chains.forEach((c, i) => {
    const yy = pad.t + i * lane + lane / 2;
    svg.append(s('line', { x1: pad.l, x2: pad.l + w, y1: yy, y2: yy, class: 'axis', 'stroke-dasharray': '2 4' }));
    svg.append(s('text', { x: pad.l - 8, y: yy + 4, 'text-anchor': 'end' }, `chain ${shortId(c)}`));
  });
  const idx = new Map(rows.map((r, i) => [r.b.id, i]));
  rows.forEach((r, i) => {
    const p = idx.get(r.b.parent_id);
    if (p === undefined) return;
    svg.append(s('line', { x1: xs[p], y1: y(rows[p]), x2: xs[i], y2: y(r), class: r.mergeFrom.length || r.fate === 'merged' ? 'ret-link ret-link-merge' : 'ret-link' }));
  });
  rows.forEach((r, i) => {
    const x = xs[i];
    const yy = y(r);
    const g = s('g', { class: `ret-mark ret-${r.fate}`, 'data-backup': r.b.id, 'data-fate': r.fate });
    if (r.fate === 'kept') g.append(s('circle', { cx: x, cy: yy, r: 7 }));
    else if (r.fate === 'merged') g.append(s('path', { d: `M${x} ${yy - 8}L${x + 8} ${yy}L${x} ${yy + 8}L${x - 8} ${yy}Z` }));
    else g.append(s('path', { d: `M${x - 6} ${yy - 6}L${x + 6} ${yy + 6}M${x + 6} ${yy - 6}L${x - 6} ${yy + 6}` }));
    g.append(s('title', {}, `${r.b.type} ${fmtTime(r.b.started_at)} (${shortId(r.b.id)}): ${FATE_WORD[r.fate]}` +
      (r.mergeFrom.length ? `; takes the data of ${r.mergeFrom.map(shortId).join(', ')}` : '')));
    svg.append(g);
  });
  const day = (iso) => fmtTime(iso).slice(0, 16);
  svg.append(s('text', { x: pad.l, y: height - 12 }, day(rows[0].b.started_at)));
  if (rows.length > 1) svg.append(s('text', { x: pad.l + w, y: height - 12, 'text-anchor': 'end' }, day(rows[rows.length - 1].b.started_at)));
  return svg;
}

/** The retention tab of a domain: the simulator on its completed backups. */
export function retentionTab(panel, ctx) {
  const { domainName } = ctx;
  const msg = h('div', { 'aria-live': 'polite' });
  const out = h('div', { id: 'retention-result' });
  const inputs = KEEPS.map(([k, l]) => h('label', { class: 'keep' }, h('span', null, l),
    h('input', { type: 'number', name: k, min: '0', max: '4294967295', step: '1', inputmode: 'numeric' })));
  const form = h('form', { class: 'panel', id: 'retention-form', 'aria-labelledby': 'retention-legend' },
    h('fieldset', { class: 'keeps' }, h('legend', { id: 'retention-legend' }, 'Retention to try (empty or 0: not used)'), inputs),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Simulate'),
      h('span', { class: 'hint', id: 'retention-from' })));
  replace(panel,
    h('h2', null, 'Retention simulator'),
    h('p', { class: 'hint' }, 'Which of this domain’s completed backups a retention would keep, by the rule prune uses. Nothing is changed.'),
    form, msg, out);

  let backups = [];
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    simulate();
  });

  function retention() {
    const r = {};
    for (const el of form.querySelectorAll('input[type=number]')) if (el.value !== '') r[el.name] = Number(el.value);
    return r;
  }

  async function simulate() {
    if (!backups.length) {
      replace(out, h('p', { class: 'empty' }, 'This domain has no completed backups to simulate on.'));
      return;
    }
    let data;
    try {
      ({ data } = await api('POST', '/v1/retention:simulate', { retention: retention(), times: backups.map((b) => b.started_at) }));
    } catch (e) {
      replace(out, problemView(e, { context: 'The retention could not be simulated.' }));
      return;
    }
    // Each answered time is a time sent: matched back to the backups by value, once each.
    const left = new Map();
    for (const t of data.keep ?? []) left.set(t, (left.get(t) ?? 0) + 1);
    const kept = new Set();
    for (const b of backups) {
      const n = left.get(b.started_at) ?? 0;
      if (n > 0) {
        kept.add(b.id);
        left.set(b.started_at, n - 1);
      }
    }
    const rows = [...classify(backups, kept).values()];
    const counts = { kept: 0, removed: 0, merged: 0 };
    rows.forEach((r) => { counts[r.fate]++; });
    const summary = `${counts.kept} kept, ${counts.removed} removed, ${counts.merged} merged into a kept backup.`;
    replace(out,
      h('p', { role: 'status', id: 'retention-summary' }, summary),
      h('div', { class: 'chart-wrap' }, axis(rows, { width: Math.max(320, Math.min(960, panel.clientWidth || 720)) })),
      h('div', { class: 'legend' },
        h('span', null, h('span', { class: 'sw sw-kept' }), 'kept'),
        h('span', null, h('span', { class: 'sw sw-removed' }), 'removed'),
        h('span', null, h('span', { class: 'sw sw-merged' }), 'merged (removed; its data goes into a kept incremental)')),
      h('h3', null, 'Backups, newest first'),
      h('ul', { class: 'retention-list', id: 'retention-list' }, [...rows].reverse().map((r) =>
        h('li', { 'data-backup': r.b.id, 'data-fate': r.fate },
          badge(FATE_WORD[r.fate], { kept: 'ok', removed: 'bad', merged: 'warn' }[r.fate]), ' ',
          h('span', null, `${r.b.type} ${fmtTime(r.b.started_at)} `), h('span', { class: 'mono muted' }, shortId(r.b.id)),
          r.mergeFrom.length ? h('span', { class: 'small' }, ` — takes a merge of ${r.mergeFrom.map(shortId).join(', ')}`) : null))));
    announce(summary);
  }

  (async () => {
    try {
      const [all, found] = await Promise.all([allBackups(domainName, ctx.signal),
        listPolicies({ signal: ctx.signal, noPrompt: true }).then((ps) => memberOf(ps, domainName)).catch(() => null)]);
      backups = all.filter((b) => b.state === 'completed' && b.started_at)
        .sort((a, b) => String(a.started_at).localeCompare(String(b.started_at)));
      const ret = found?.policy.retention ?? {};
      for (const el of form.querySelectorAll('input[type=number]')) el.value = ret[el.name] ? String(ret[el.name]) : '';
      document.getElementById('retention-from').textContent = found
        ? `Filled in from policy ${found.policy.name}.` : 'This domain is in no policy: try any counts.';
      if (found || !backups.length) simulate();
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(out, problemView(e, { context: 'The backups could not be read.' }));
    }
  })();
  return () => {};
}
