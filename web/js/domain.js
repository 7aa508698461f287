// One domain: its facts, its protection (policies), and four tabs (snapshots, checkpoints,
// backups, retention) as links whose current one is marked with aria-current, so each tab
// has its own address (#/d/NAME/TAB).

import { h, replace, stateBadge, fmtBytes } from './dom.js';
import { get, seg, problemView } from './api.js';
import { snapshotsTab } from './snapshots.js';
import { checkpointsTab } from './checkpoints.js';
import { backupsTab } from './backups.js';
import { protectionLine, retentionTab } from './protection.js';

const TABS = [
  ['snapshots', 'Snapshots', snapshotsTab],
  ['checkpoints', 'Checkpoints', checkpointsTab],
  ['backups', 'Backups', backupsTab],
  ['retention', 'Retention', retentionTab],
];

export function domainView(main, { domain, tab }, ctx) {
  const found = TABS.find(([k]) => k === tab) ?? TABS[0];
  const [key, label, render] = found;
  const href = (k) => `#/d/${encodeURIComponent(domain)}/${k}`;
  const facts = h('div', { class: 'facts' });
  const protection = h('div', { class: 'facts protection', id: 'protection', role: 'group', 'aria-label': 'Protection' });
  const panel = h('section', { id: 'tab-panel', 'aria-labelledby': `tab-${key}` });
  replace(main,
    h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Domains'), ' / '),
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, domain)),
    facts,
    protection,
    h('nav', { class: 'tabs', 'aria-label': 'Domain sections' },
      TABS.map(([k, l]) => h('a', { href: href(k), id: `tab-${k}`, 'aria-current': k === key ? 'page' : null }, l))),
    panel);
  document.title = `${domain} · ${label} · virtvault`;

  let cleanup = null;
  let stopped = false;
  const ctxTab = { ...ctx, domainName: domain, domain: null, reloadDomain: loadDomain };

  async function loadDomain() {
    try {
      const d = await get(`/v1/domains/${seg(domain)}`, { signal: ctx.signal });
      ctxTab.domain = d;
      replace(facts,
        h('span', null, 'State ', stateBadge(d.state)),
        h('span', null, 'Disks ', h('b', null, (d.disks ?? []).map((x) => x.target).join(', ') || 'none')),
        h('span', null, 'vCPUs ', h('b', null, String(d.vcpus))),
        h('span', null, 'Memory ', h('b', null, fmtBytes(d.memory_bytes))),
        h('span', { class: 'mono small' }, d.uuid));
      return d;
    } catch (e) {
      if (e.name === 'AbortError') return null;
      replace(facts, problemView(e, { context: 'The domain could not be read.' }));
      return null;
    }
  }

  protectionLine(protection, domain, ctx.signal);
  loadDomain().then(() => {
    if (stopped || ctx.signal.aborted) return;
    const r = render(panel, ctxTab);
    cleanup = typeof r === 'function' ? r : null;
  });
  return () => {
    stopped = true;
    document.title = 'virtvault';
    if (cleanup) cleanup();
  };
}
