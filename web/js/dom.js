// Small DOM and formatting helpers shared by every view.

/**
 * Makes an element: h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child...).
 * Attributes that start with "on" become listeners; null/false/undefined ones are skipped;
 * children may be strings, nodes, arrays of them, or null (skipped). Text is never parsed as HTML.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style') el.style.cssText = v; // CSSOM: allowed by the CSP, an attribute is not
      else if (k === 'value' || k === 'checked') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replaces the children of el with the given ones. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB"; null -> "—". */
export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
}

/** Seconds -> "4 s", "2 min 5 s", "1 h 3 min". */
export function fmtDuration(s) {
  if (s === null || s === undefined || Number.isNaN(s) || s < 0) return '—';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** An RFC 3339 time -> "5 min ago" (relative to now). */
export function fmtAge(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return '—';
  const s = Math.max(0, (now - t) / 1000);
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** An RFC 3339 time -> "2026-11-26 11:13:11 UTC" (the API speaks UTC, so does the UI). */
export function fmtTime(iso) {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return '—';
  return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
}

/** Duration in seconds between two RFC 3339 times, or null. */
export function secondsBetween(a, b) {
  const x = Date.parse(a);
  const y = Date.parse(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return null;
  return (y - x) / 1000;
}

/** A badge: text in a pill whose colour follows tone (ok, warn, bad, info, muted). */
export function badge(text, tone, title) {
  return h('span', { class: `badge b-${tone}`, title }, text);
}

const STATE_TONES = {
  running: 'ok', ok: 'ok', succeeded: 'ok', completed: 'ok', ready: 'info', redefined: 'info',
  queued: 'muted', shutoff: 'muted', paused: 'warn', pmsuspended: 'warn', blocked: 'warn',
  orphaned: 'warn', cancelled: 'warn', shutdown: 'warn', broken: 'bad', failed: 'bad',
  crashed: 'bad', unknown: 'muted', nostate: 'muted',
};

/** A badge for a state word, coloured by what it means. */
export function stateBadge(state, title) {
  return badge(state ?? '—', STATE_TONES[state] ?? 'muted', title);
}

/** Says text to screen readers through the page's polite live region. */
export function announce(text) {
  const el = document.getElementById('announce');
  if (!el) return;
  el.textContent = '';
  // A new text node on the next frame makes screen readers announce repeats too.
  requestAnimationFrame(() => { el.textContent = text; });
}

/** A short id for tables: the first 8 characters. */
export function shortId(id) {
  return id ? String(id).slice(0, 8) : '—';
}
