// The entry point: a hash router over the kinds of page.
//   #/                          the domains
//   #/d/NAME[/snapshots|/checkpoints|/backups|/retention]   one domain, on one tab (snapshots first)
//   #/policies                  the protection policies
//   #/remotes[?remote=NAME&domain=D]   the remotes (buckets for offsite copies), one's contents
// A view is a function (main, params, ctx) that renders into main and may return a cleanup
// function; ctx.signal is aborted when the page changes. The domain page's modules are
// loaded when first needed, so that the domains page starts with less to fetch.

import { getToken, setToken, onTokenChange, takeTokenFromUrl } from './api.js';
import { startEvents, onStatus } from './events.js';
import { domainsView } from './domains.js';
import { trapFocus } from './dialog.js';

takeTokenFromUrl(); // before the first route: the fragment is not a page

const main = document.getElementById('main');
let cleanup = null;
let controller = null;
let firstRender = true;

function parse(hash) {
  const path = hash.replace(/^#/, '') || '/';
  const [pathname, query = ''] = path.split('?');
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  if (parts[0] === 'd' && parts[1]) {
    return { view: 'domain', params: { domain: parts[1], tab: parts[2] || 'snapshots', query: params } };
  }
  if (parts[0] === 'policies') return { view: 'policies', params: { query: params } };
  if (parts[0] === 'remotes') return { view: 'remotes', params: { query: params } };
  return { view: 'domains', params: { query: params } };
}

let domainModule = null;
const views = {
  domains: async () => domainsView,
  domain: async () => {
    domainModule ??= import('./domain.js');
    return (await domainModule).domainView;
  },
  policies: async () => (await import('./policies.js')).policiesView,
  remotes: async () => (await import('./remotes.js')).remotesView,
};

async function route() {
  if (cleanup) cleanup();
  if (controller) controller.abort();
  cleanup = null;
  controller = new AbortController();
  const { view: name, params } = parse(location.hash);
  const my = controller;
  let view;
  try {
    view = await views[name]();
  } catch (e) {
    main.textContent = `The page could not be loaded: ${e.message}`;
    return;
  }
  if (my !== controller) return; // another navigation came first
  // The main navigation marks the section shown (a domain's page is in Domains).
  for (const [id, on] of [['nav-domains', name === 'domains' || name === 'domain'], ['nav-policies', name === 'policies'],
    ['nav-remotes', name === 'remotes']]) {
    if (on) document.getElementById(id).setAttribute('aria-current', 'page');
    else document.getElementById(id).removeAttribute('aria-current');
  }
  const same = main.dataset.view === name && main.dataset.domain === (params.domain ?? '');
  main.dataset.view = name;
  main.dataset.domain = params.domain ?? '';
  const r = view(main, params, { signal: controller.signal, sameView: same });
  cleanup = typeof r === 'function' ? r : null;
  // A new page moves focus to its heading, so keyboard and screen reader users start there.
  if (!firstRender && !same) main.querySelector('h1')?.focus();
  firstRender = false;
}

window.addEventListener('hashchange', route);

const forget = document.getElementById('forget-token');
forget.hidden = !getToken();
onTokenChange((has) => { forget.hidden = !has; });
forget.addEventListener('click', () => {
  setToken(null);
  location.reload();
});

const live = document.getElementById('live');
onStatus(({ state, detail }) => {
  live.className = `live ${state}`;
  live.textContent = state === 'on' ? 'live' : state === 'off' ? 'live updates off' : 'live: connecting';
  live.title = state === 'on' ? 'Receiving /v1/events' : detail || 'Connecting to /v1/events';
});

trapFocus(document.getElementById('token-dialog'));

route();
startEvents();
