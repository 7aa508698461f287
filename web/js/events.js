// Live updates: the /v1/events stream (Server-Sent Events) and the jobs the UI follows.
//
// The stream is read with fetch() rather than EventSource so that it can carry the bearer
// token. Every event is parsed as JSON and handed to the listeners; an event whose data is a
// job (or holds one as "job") updates the job it names. When the stream is missing (404/501)
// or down, followed jobs are polled at GET /v1/jobs/{id}, so progress still moves.

import { api, authHeaders, readProblem, ApiError, seg, onTokenChange } from './api.js';

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const isFinal = (job) => FINAL.has(job?.state);

const listeners = new Set();
const statusListeners = new Set();
let status = { state: 'connecting', detail: '' };
let started = false;

/** Calls fn({event, data}) for every event of the stream. Returns a function that stops it. */
export function onEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Calls fn(status) now and whenever the stream's state changes ({state, detail}). */
export function onStatus(fn) {
  statusListeners.add(fn);
  fn(status);
  return () => statusListeners.delete(fn);
}

export const eventsLive = () => status.state === 'on';

function setStatus(state, detail = '') {
  status = { state, detail };
  statusListeners.forEach((fn) => fn(status));
}

/** Opens the stream (once) and keeps it open, reconnecting with a backoff. */
export function startEvents() {
  if (started) return;
  started = true;
  let delay = 1000;
  let wake = null;
  // A new token may open a stream that was refused: try again at once.
  onTokenChange(() => { if (wake) wake(); });
  const loop = async () => {
    for (;;) {
      try {
        const res = await fetch('/v1/events', {
          headers: { Accept: 'text/event-stream', ...authHeaders() }, cache: 'no-store',
        });
        if (!res.ok) {
          const p = await readProblem(res);
          setStatus('off', `${p.title}: ${p.detail ?? ''}`);
          // 404/501: not on this server; try again rarely, in case it is upgraded.
          delay = res.status === 404 || res.status === 501 ? 60000 : Math.min(delay * 2, 30000);
        } else {
          setStatus('on');
          delay = 1000;
          await read(res.body);
          setStatus('off', 'the event stream ended; reconnecting');
        }
      } catch (e) {
        setStatus('off', `the event stream failed: ${e.message}`);
        delay = Math.min(delay * 2, 30000);
      }
      await new Promise((r) => {
        const t = setTimeout(r, delay);
        wake = () => { clearTimeout(t); r(); };
      });
      wake = null;
    }
  };
  loop();
}

/** Reads an SSE byte stream to its end, dispatching each event. */
async function read(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let name = 'message';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
      if (line === '') {
        if (data.length) dispatch(name, data.join('\n'));
        name = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        continue; // a comment: keepalive
      } else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
    }
  }
}

function dispatch(name, text) {
  let data;
  try { data = JSON.parse(text); } catch { data = text; }
  const job = jobOf(data);
  if (job) updateJob(job);
  listeners.forEach((fn) => {
    try { fn({ event: name, data }); } catch (e) { console.error(e); }
  });
}

/** The job an event carries, if any. */
export function jobOf(data) {
  if (!data || typeof data !== 'object') return null;
  const j = data.job && typeof data.job === 'object' ? data.job : data;
  if (typeof j.id === 'string' && typeof j.state === 'string' && j.progress) return j;
  return null;
}

// --- followed jobs ---

const followed = new Map(); // id -> {job, subs: Set, resolve, timer}

function updateJob(job) {
  const f = followed.get(job.id);
  if (!f) return;
  f.job = job;
  f.subs.forEach((fn) => fn(job));
  if (isFinal(job)) {
    clearTimeout(f.timer);
    followed.delete(job.id);
    f.resolve(job);
  }
}

/** The id in a Location header "/v1/jobs/{id}". */
export function jobIdFrom(location) {
  const m = /\/v1\/jobs\/([^/?#]+)/.exec(location || '');
  return m ? decodeURIComponent(m[1]) : null;
}

/**
 * Follows job id until it ends: onUpdate(job) at every change (from the stream, or from
 * polling when the stream is not live). Resolves with the final job; rejects with ApiError
 * when the job cannot be read at all.
 */
export function followJob(id, onUpdate, first) {
  let f = followed.get(id);
  if (!f) {
    let resolve;
    const done = new Promise((r) => { resolve = r; });
    f = { job: first ?? null, subs: new Set(), resolve, done, timer: 0, failures: 0 };
    followed.set(id, f);
    const poll = async () => {
      try {
        const { data } = await api('GET', `/v1/jobs/${seg(id)}`);
        f.failures = 0;
        if (!f.job || JSON.stringify(f.job) !== JSON.stringify(data)) updateJob(data);
      } catch (e) {
        if (++f.failures >= 5 || (e instanceof ApiError && e.status === 404)) {
          followed.delete(id);
          f.subs.forEach((fn) => fn(null, e));
          f.resolve(null);
          return;
        }
      }
      if (followed.has(id)) f.timer = setTimeout(poll, eventsLive() ? 2000 : 700);
    };
    f.timer = setTimeout(poll, 300);
  }
  if (onUpdate) {
    f.subs.add(onUpdate);
    if (f.job) onUpdate(f.job);
  }
  return f.done;
}

/** Percent done of a job, 0..100, or null while its size is unknown. */
export function percentOf(job) {
  if (!job) return null;
  if (job.state === 'succeeded') return 100;
  const { bytes_done: d, bytes_total: t } = job.progress || {};
  if (!t) return null;
  return Math.max(0, Math.min(100, (100 * d) / t));
}
