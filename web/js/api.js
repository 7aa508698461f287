// The HTTP client of the UI: JSON in and out, problems (RFC 9457) as errors, bearer tokens.
//
// Every call goes to the origin that served the page (relative URLs): the UI talks to no
// other host. A 401 asks for a token through the token dialog, keeps it in sessionStorage
// (this tab only) and retries the request once per token entered.

import { h, replace } from './dom.js';

const TOKEN_KEY = 'virtvault.token';

/** An answer of the API that is not 2xx: carries the problem object as the API gave it. */
export class ApiError extends Error {
  constructor(problem, status) {
    super(`${problem.title}: ${problem.detail ?? ''}`);
    this.problem = problem;
    this.status = status;
  }
}

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives as long as the page */ }
  memoryToken = token || null;
  tokenListeners.forEach((fn) => fn(Boolean(token)));
}

/**
 * A login link (`make run` prints one) carries the token in the fragment, "#token=...", which
 * never reaches a server. Moves it into sessionStorage and out of the address bar and history.
 */
export function takeTokenFromUrl() {
  const m = /^#token=([^&/?]+)$/.exec(location.hash);
  if (!m) return;
  let token = null;
  try { token = decodeURIComponent(m[1]); } catch { /* not a token */ }
  history.replaceState(null, '', `${location.pathname}${location.search}#/`);
  if (token) setToken(token);
}

let memoryToken = null;
const tokenListeners = new Set();
export function onTokenChange(fn) { tokenListeners.add(fn); }

/** The Authorization header for the current token, or {}. */
export function authHeaders() {
  const t = getToken() ?? memoryToken;
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** Reads a problem from a response, whatever it holds; never throws. */
export async function readProblem(res) {
  let body = null;
  const text = await res.text().catch(() => '');
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (body && typeof body === 'object' && (body.title || body.detail)) return body;
  return {
    title: res.statusText || `HTTP ${res.status}`,
    status: res.status,
    detail: text ? text.slice(0, 500) : `the server answered ${res.status} with no problem details`,
  };
}

let pendingPrompt = null;

/**
 * Shows the token dialog with the problem that caused it. Resolves with the token entered,
 * or null when cancelled. Concurrent 401s share one prompt.
 */
export function askToken(problem) {
  if (pendingPrompt) return pendingPrompt;
  const dlg = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  const form = dlg.querySelector('form');
  const opener = document.activeElement;
  replace(document.getElementById('token-problem'), problemView(problem, { bare: true }));
  input.value = '';
  pendingPrompt = new Promise((resolve) => {
    const done = (value) => {
      form.removeEventListener('submit', onSubmit);
      dlg.removeEventListener('close', onClose);
      cancelBtn.removeEventListener('click', onCancel);
      if (dlg.open) dlg.close();
      pendingPrompt = null;
      if (opener && opener.isConnected && opener.focus) opener.focus();
      resolve(value);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (!v) { input.focus(); return; }
      done(v);
    };
    const onCancel = () => done(null);
    const onClose = () => done(null);
    const cancelBtn = dlg.querySelector('[data-close]');
    form.addEventListener('submit', onSubmit);
    cancelBtn.addEventListener('click', onCancel);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    input.focus();
  });
  return pendingPrompt;
}

/**
 * Calls the API. Resolves with {status, data, location} for 2xx; rejects with ApiError
 * (whose problem is the API's own, or one made up for a network failure).
 */
export async function api(method, path, body, opts = {}) {
  for (;;) {
    const headers = { Accept: 'application/json, application/problem+json', ...authHeaders() };
    let payload;
    // The service takes writes as JSON only, empty ones too (no form can send that).
    if (body !== undefined || method !== 'GET') headers['Content-Type'] = 'application/json';
    if (body !== undefined) payload = JSON.stringify(body);
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload, signal: opts.signal, cache: 'no-store' });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError({ title: 'The server cannot be reached', status: 0,
        detail: `${method} ${path}: ${e.message}` }, 0);
    }
    if (res.status === 401 && !opts.noPrompt) {
      const problem = await readProblem(res);
      const token = await askToken(problem);
      if (!token) {
        if (getToken()) setToken(null); // the one kept was refused
        throw new ApiError(problem, 401);
      }
      setToken(token);
      continue;
    }
    if (!res.ok) throw new ApiError(await readProblem(res), res.status);
    const type = res.headers.get('Content-Type') || '';
    let data = null;
    if (res.status !== 204) data = type.includes('json') ? await res.json() : await res.text();
    return { status: res.status, data, location: res.headers.get('Location') };
  }
}

export const get = (path, opts) => api('GET', path, undefined, opts).then((r) => r.data);

/** The most items one page of a list holds (the service's `limit` maximum). */
export const PAGE_MAX = 1000;

/**
 * GETs every page of a list: follows `next_page_token` (pages of PAGE_MAX) and resolves with
 * the first page's answer holding all the items, `next_page_token` null. The token holds a
 * position, not an offset, so items added meanwhile neither repeat nor push others out.
 */
export async function getAll(path, opts) {
  const sep = path.includes('?') ? '&' : '?';
  let data = null;
  let token = null;
  do {
    const page = await get(`${path}${sep}limit=${PAGE_MAX}${token ? `&page_token=${encodeURIComponent(token)}` : ''}`, opts);
    if (!data) data = { ...page, items: [...(page.items ?? [])] };
    else data.items.push(...(page.items ?? []));
    token = page.next_page_token ?? null;
  } while (token);
  data.next_page_token = null;
  return data;
}

/** Percent-encodes one path segment (domain names may hold any character). */
export const seg = (s) => encodeURIComponent(s);

/**
 * Renders a problem as the API states it: title, detail, and status/code in small print.
 * opts.context: a sentence put before it ("Snapshots could not be listed.").
 */
export function problemView(problem, opts = {}) {
  const p = problem instanceof ApiError ? problem.problem : problem;
  if (!p) return null;
  const meta = [p.status ? `HTTP ${p.status}` : null, p.code ? `code ${p.code}` : null,
    p.instance ? p.instance : null].filter(Boolean).join(' · ');
  const parts = [
    opts.context ? h('div', null, opts.context) : null,
    h('div', { class: 'p-title' }, p.title || 'Error'),
    p.detail ? h('div', { class: 'p-detail' }, p.detail) : null,
    meta ? h('div', { class: 'p-meta' }, meta) : null,
  ];
  return opts.bare ? parts : h('div', { class: 'problem', role: 'alert' }, parts);
}

/** True when the API says the resource family is missing or unsupported here. */
export function isUnavailable(err) {
  return err instanceof ApiError && (err.status === 404 || err.status === 501 || err.status === 405);
}
