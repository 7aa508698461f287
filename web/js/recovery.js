// Recovery from one backup point, on the backups tab: "Run now" (instant recovery: a new
// domain running on the backup's chain in the vault at once, then its disks moved off the
// vault while it runs, followed up to "independent"), "Mount" (the point's disks read-only over
// NBD and HTTP, with the URIs and a command to copy them) and "Browse files" (the filesystems
// inside a disk at that point: directories, breadcrumbs and download links).

import { h, replace, badge, fmtBytes, fmtTime, fmtAge, fmtDuration, secondsBetween, shortId, announce } from './dom.js';
import { api, get, seg, problemView, authHeaders, getToken, readProblem, ApiError } from './api.js';
import { formDialog, textField } from './dialog.js';
import { followJob, jobIdFrom, percentOf } from './events.js';

/** The steps of an instant recovery, as its job's result.phase names them. */
const PHASES = [
  ['defined', 'Domain defined'],
  ['running', 'Running from the vault'],
  ['independent', 'Disks moved off the vault'],
];

/** A copy button for the text of el (the clipboard, else the text selected for Ctrl+C). */
function copyButton(text, label) {
  return h('button', { type: 'button', class: 'btn small', 'aria-label': label, onclick: async (ev) => {
    const btn = ev.currentTarget;
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = 'Copied';
      announce('Copied.');
    } catch {
      const code = btn.previousElementSibling;
      if (code) getSelection().selectAllChildren(code);
      btn.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 2500);
  } }, 'Copy');
}

/** One copyable line: the text in monospace and a Copy button. */
function copyLine(text, label) {
  return h('span', { class: 'copy-line' }, h('code', { class: 'uri' }, text), ' ', copyButton(text, label));
}

/**
 * The recovery area of a backups tab. ctx: {domainName, domain, base (the backups URL),
 * signal}. Returns {el, runNow(b), mount(b), browse(b), resume(backups), load()}: el goes
 * into the tab.
 */
export function recoveryArea(ctx) {
  const { domainName, base } = ctx;
  const jobsEl = h('div', { class: 'jobs', id: 'recovery-jobs', 'aria-label': 'Instant recoveries' });
  const mountsEl = h('section', { id: 'mounts', 'aria-labelledby': 'mounts-title', hidden: true });
  const filesEl = h('section', { id: 'file-browser', 'aria-labelledby': 'files-title', hidden: true });
  const el = h('div', { class: 'recovery' }, jobsEl, filesEl, mountsEl);

  // --- Run now ---

  async function runNow(b) {
    const body = [
      h('p', null, `Defines and starts a new domain on backup ${shortId(b.id)} (${b.type}, ${fmtTime(b.started_at)}) at once: `
        + 'its disks are new overlays on the backup’s images in the vault, which are never written. '
        + 'The disks are then copied off the vault while it runs. The domain ', h('b', null, domainName), ' is not touched.'),
      textField('name', 'Name of the new domain', { required: true, maxlength: '64', value: `${domainName}-recovered`,
        autocomplete: 'off', spellcheck: 'false' }, 'A new domain: new UUID and MAC addresses.'),
      textField('target_dir', 'Target folder', { required: true, placeholder: '/var/lib/virtvault/vault/restore/…' },
        'Where its disks end up: an absolute folder on the server inside a restore root (--restore-roots; default <vault>/restore).'),
      textField('bandwidth', 'Copy bandwidth limit (MiB/s)', { inputmode: 'numeric', pattern: '[0-9]*' }, 'Empty: no limit.'),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'start', checked: true }), 'Start the domain now'),
    ];
    const r = await formDialog({
      title: `Run backup ${shortId(b.id)} now`, body, submitLabel: 'Run now', id: 'run-now-dialog',
      submit: async (form) => {
        const f = new FormData(form);
        const req = { name: String(f.get('name')).trim(), target_dir: f.get('target_dir'), start: f.get('start') === 'on' };
        const bw = String(f.get('bandwidth') ?? '').trim();
        if (bw) req.bandwidth = Math.round(Number(bw) * 1048576);
        if (bw && !Number.isFinite(req.bandwidth)) req.bandwidth = bw; // the API names the field
        return api('POST', `${base}/${seg(b.id)}/instant-recovery`, req);
      },
    });
    if (!r) return;
    const job = r.data ?? {};
    const id = job.id ?? jobIdFrom(r.location);
    announce('Instant recovery started.');
    if (id) followRecovery(id, b, job);
  }

  const followed = new Set(); // instant recovery job ids shown

  /**
   * Shows the instant recoveries still moving off backups of this domain (started before the
   * page was opened, or by another client): backups is the catalog, a list of backups.
   */
  async function resume(backups) {
    const byId = new Map(backups.map((x) => [x.id, x]));
    let jobs;
    try {
      jobs = (await get('/v1/jobs?state=running&limit=100', { signal: ctx.signal, noPrompt: true })).items ?? [];
    } catch {
      return; // the catalog works without it
    }
    for (const j of jobs) {
      const from = byId.get(j.result?.backup_id);
      if (j.kind === 'instant_recovery' && from && !followed.has(j.id)) followRecovery(j.id, from, j);
    }
  }

  /** A box for an instant recovery job: its phases, the move's progress, the new domain. */
  function followRecovery(id, b, first) {
    if (followed.has(id)) return;
    followed.add(id);
    const name = first?.domain ?? '';
    const steps = h('ol', { class: 'phases' });
    const bar = h('span', { style: 'width:0%' });
    const barBox = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100',
      'aria-valuenow': '0', 'aria-label': `Move of ${name} off the vault` }, bar);
    const state = h('span', { class: 'job-state' }, 'queued');
    const link = h('span', { class: 'recovered-link' });
    const cancel = h('button', { type: 'button', class: 'btn small', 'aria-label': `Stop moving ${name} off the vault`, onclick: async () => {
      try {
        await api('DELETE', `/v1/jobs/${seg(id)}`);
        announce('Asked to stop the move; the domain keeps running on the vault.');
      } catch (e) {
        box.append(problemView(e, { context: 'The move could not be stopped.' }));
      }
    } }, 'Stop the move');
    const outcome = h('div');
    const box = h('div', { class: 'job recovery-job', 'data-job': id, 'data-recovery': name, role: 'group',
      'aria-label': `Instant recovery ${name}` },
      h('div', { class: 'job-line' },
        h('span', null, h('b', null, 'Run now'), ` · backup ${shortId(b.id)} as `, h('b', null, name)), state),
      steps, barBox, h('div', { class: 'job-line' }, link, cancel), outcome);
    jobsEl.prepend(box);

    const update = (j) => {
      if (!j) return;
      const res = j.result && typeof j.result === 'object' ? j.result : {};
      const phase = res.phase ?? (j.state === 'queued' ? null : 'starting');
      const idx = PHASES.findIndex(([p]) => p === phase);
      replace(steps, PHASES.map(([p, label], i) => {
        const skipped = p === 'running' && idx >= i && res.running_after_ms === null;
        const done = idx >= i && !skipped;
        return h('li', { class: done ? 'done' : null, 'data-phase': p },
          badge(done ? 'done' : skipped ? 'not started' : 'waiting', done ? 'ok' : 'muted'), ' ', label,
          p === 'running' && done && typeof res.running_after_ms === 'number'
            ? h('span', { class: 'muted', 'data-field': 'running-after' }, ` after ${fmtDuration(res.running_after_ms / 1000)}`) : null);
      }));
      const pct = percentOf(j) ?? 0;
      bar.style.width = `${pct}%`;
      barBox.setAttribute('aria-valuenow', String(Math.round(pct)));
      const sizes = j.progress?.bytes_total ? ` · ${fmtBytes(j.progress.bytes_done)} of ${fmtBytes(j.progress.bytes_total)}` : '';
      state.textContent = `${j.state}${phase && phase !== j.state ? ` · ${phase}` : ''}${j.progress?.bytes_total ? ` · ${Math.round(pct)}%` : ''}${sizes}`;
      const domName = res.domain?.name ?? j.domain ?? name;
      if ((phase === 'running' || phase === 'independent' || phase === 'defined') && domName && !link.firstChild) {
        link.append('New domain: ', h('a', { href: `#/d/${encodeURIComponent(domName)}` }, domName));
      }
      cancel.hidden = j.state !== 'running' || phase === 'independent';
      box.classList.toggle('done', j.state === 'succeeded');
      box.classList.toggle('failed', j.state === 'failed' || j.state === 'cancelled');
    };
    update(first);
    followJob(id, update, first).then((final) => {
      if (!final) return;
      update(final);
      if (final.state === 'succeeded') {
        const took = secondsBetween(final.created_at, final.finished_at);
        const text = `${name} is running and independent of the vault${took === null ? '' : ` (${fmtDuration(took)} after the request)`}.`;
        replace(outcome, h('p', { class: 'result', role: 'status' }, text));
        announce(text);
      } else {
        replace(outcome, problemView(final.error ?? { title: `The recovery ended ${final.state}`, detail: '' }));
      }
    });
  }

  // --- Mounts ---

  async function mount(b) {
    try {
      const r = await api('POST', `${base}/${seg(b.id)}/mounts`, {});
      announce(`Backup ${shortId(b.id)} mounted.`);
      await loadMounts(r.data?.id);
    } catch (e) {
      mountsEl.hidden = false;
      replace(mountsEl, h('h3', { id: 'mounts-title' }, 'Mounts'),
        problemView(e, { context: `Backup ${shortId(b.id)} could not be mounted.` }));
    }
  }

  function mineOf(m) {
    return m.domain === domainName || (ctx.domain?.uuid && m.domain_uuid === ctx.domain.uuid);
  }

  async function loadMounts(fresh) {
    let all = [];
    try {
      let token = null;
      do {
        const page = await get(`/v1/mounts?limit=100${token ? `&page_token=${encodeURIComponent(token)}` : ''}`,
          { signal: ctx.signal, noPrompt: true });
        all.push(...(page.items ?? []));
        token = page.next_page_token ?? null;
      } while (token);
    } catch (e) {
      if (e.name === 'AbortError') return;
      mountsEl.hidden = false;
      replace(mountsEl, h('h3', { id: 'mounts-title' }, 'Mounts'), problemView(e, { context: 'The mounts could not be read.' }));
      return;
    }
    all = all.filter(mineOf);
    mountsEl.hidden = !all.length;
    replace(mountsEl,
      h('h3', { id: 'mounts-title' }, 'Mounts'),
      h('p', { class: 'hint' }, 'Backup points served read-only over NBD and HTTP. A mount nobody reads ends by itself after its idle timeout.'),
      all.map((m) => mountCard(m, m.id === fresh)));
    if (fresh) mountsEl.querySelector(`[data-mount="${CSS.escape(fresh)}"] h4`)?.focus();
  }

  function mountCard(m, fresh) {
    const origin = location.origin;
    return h('article', { class: `panel mount${fresh ? ' fresh' : ''}`, 'data-mount': m.id, 'aria-labelledby': `mount-${m.id}` },
      h('h4', { id: `mount-${m.id}`, tabindex: '-1' }, `Backup ${shortId(m.backup_id)}`,
        h('span', { class: 'muted small' }, ` · mount ${shortId(m.id)} · since ${fmtAge(m.created_at)} · idle timeout ${fmtDuration(m.idle_timeout)}`)),
      (m.disks ?? []).map((d) => {
        const data = `${origin}${d.data}`;
        const extents = `${origin}${d.data.replace(/\/data$/, '/extents')}?context=allocation`;
        const cmd = `nbdcopy '${d.uri}' ${d.target}.raw`;
        return h('div', { class: 'mount-disk', 'data-disk': d.target },
          h('h5', null, d.target, h('span', { class: 'muted small' }, ` · ${fmtBytes(d.size)}`)),
          h('dl', { class: 'kv' },
            h('dt', null, 'NBD URI'), h('dd', { 'data-field': 'uri' }, copyLine(d.uri, `Copy the NBD URI of ${d.target}`)),
            h('dt', null, 'Socket'), h('dd', { 'data-field': 'socket' }, h('code', { class: 'uri' }, d.socket)),
            h('dt', null, 'HTTP data'), h('dd', { 'data-field': 'data' }, copyLine(data, `Copy the HTTP data URL of ${d.target}`)),
            h('dt', null, 'HTTP extents'), h('dd', { 'data-field': 'extents' }, copyLine(extents, `Copy the HTTP extents URL of ${d.target}`)),
            h('dt', null, 'Copy it'), h('dd', { 'data-field': 'command' }, copyLine(cmd, `Copy the nbdcopy command for ${d.target}`))));
      }),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', 'aria-label': `Unmount backup ${shortId(m.backup_id)} (mount ${shortId(m.id)})`,
        onclick: () => unmount(m) }, 'Unmount')));
  }

  async function unmount(m) {
    try {
      await api('DELETE', `/v1/mounts/${seg(m.id)}`);
      announce(`Backup ${shortId(m.backup_id)} unmounted.`);
    } catch (e) {
      mountsEl.querySelector(`[data-mount="${CSS.escape(m.id)}"]`)?.append(problemView(e, { context: 'The mount could not be ended.' }));
      return;
    }
    await loadMounts();
    if (mountsEl.hidden) document.getElementById('backups-table')?.querySelector('button')?.focus();
  }

  // --- Browse files ---

  let browsing = null; // {b, disk, fs, path, seq}

  function browse(b) {
    const disks = (b.disks ?? []).map((d) => d.target).filter(Boolean);
    browsing = { b, disk: disks[0] ?? 'vda', fs: null, path: '/', seq: 0, opened: false };
    filesEl.hidden = false;
    const close = h('button', { type: 'button', class: 'btn small', onclick: () => {
      browsing = null;
      filesEl.hidden = true;
      replace(filesEl);
      document.querySelector(`tr[data-backup="${CSS.escape(b.id)}"] button[data-action=browse]`)?.focus();
    } }, 'Close');
    const diskPick = disks.length > 1 ? h('label', { class: 'inline' }, 'Disk ',
      h('select', { id: 'files-disk', onchange: (ev) => { browsing.disk = ev.target.value; browsing.fs = null; openDisk(); } },
        disks.map((t) => h('option', { value: t }, t)))) : null;
    replace(filesEl,
      h('div', { class: 'files-head' },
        h('h3', { id: 'files-title', tabindex: '-1' }, `Files in backup ${shortId(b.id)}`,
          h('span', { class: 'muted small' }, ` · ${b.type} · ${fmtTime(b.started_at)}`)),
        diskPick, h('span', { class: 'spacer' }), close),
      h('div', { id: 'files-body', 'aria-live': 'polite' }));
    filesEl.querySelector('h3').focus();
    openDisk();
  }

  const diskUrl = () => `${base}/${seg(browsing.b.id)}/disks/${seg(browsing.disk)}`;

  /**
   * GETs a files route. A cold backup point answers once its reader is launched (or, should the
   * service answer 202 with a job, once that job ends): the "opening" state says so.
   */
  async function filesGet(path, my, quiet) {
    const slow = setTimeout(() => {
      if (my !== browsing?.seq || quiet) return;
      const t0 = performance.now();
      const secs = h('span', { class: 'elapsed' }, '0 s');
      const tick = setInterval(() => {
        if (!secs.isConnected) { clearInterval(tick); return; }
        secs.textContent = `${Math.round((performance.now() - t0) / 1000) + 1} s`;
      }, 1000);
      setBody(h('p', { class: 'notice opening', role: 'status', 'aria-busy': 'true' },
        h('b', null, 'Opening the backup…'), ' About 30 s the first time (a small reader appliance starts for this backup point); '
        + 'later listings are fast. ', secs));
    }, browsing?.opened ? 1500 : 0);
    try {
      for (;;) {
        const r = await api('GET', path, undefined, { signal: ctx.signal });
        if (r.status !== 202) return r.data;
        const id = r.data?.id ?? jobIdFrom(r.location);
        const final = id ? await followJob(id) : null;
        if (final && final.state !== 'succeeded') throw new ApiError(final.error ?? { title: `Opening the backup ended ${final.state}` }, 500);
      }
    } finally {
      clearTimeout(slow);
    }
  }

  function setBody(...children) {
    const body = document.getElementById('files-body');
    if (body) replace(body, ...children);
  }

  async function openDisk() {
    const my = ++browsing.seq;
    let data;
    try {
      data = await filesGet(`${diskUrl()}/filesystems`, my);
    } catch (e) {
      if (e.name === 'AbortError' || my !== browsing?.seq) return;
      setBody(problemView(e, { context: `The filesystems of ${browsing.disk} could not be read.` }));
      return;
    }
    if (my !== browsing?.seq) return;
    browsing.opened = true;
    const fss = data?.items ?? [];
    browsing.filesystems = fss;
    // One filesystem: straight into it. None: the listing says why, as the API states it.
    if (fss.length <= 1) {
      openDir(fss[0]?.device ?? null, '/');
      return;
    }
    showFilesystems();
  }

  function showFilesystems() {
    const fss = browsing.filesystems ?? [];
    setBody(
      crumbs(null, '/'),
      fss.length ? h('table', { class: 'grid files', id: 'filesystems-table' },
        h('caption', { class: 'visually-hidden' }, `Filesystems in ${browsing.disk}`),
        h('thead', null, h('tr', null, ['Device', 'Type', 'Label', 'Size', 'UUID']
          .map((t) => h('th', { scope: 'col', class: t === 'Size' ? 'num' : null }, t)))),
        h('tbody', null, fss.map((f) => h('tr', { 'data-filesystem': f.device },
          h('td', { 'data-label': 'Device' }, h('button', { type: 'button', class: 'btn link mono',
            onclick: () => openDir(f.device, '/') }, f.device)),
          h('td', { 'data-label': 'Type' }, f.type ?? '—'),
          h('td', { 'data-label': 'Label' }, f.label || '—'),
          h('td', { 'data-label': 'Size', class: 'num' }, fmtBytes(f.size)),
          h('td', { 'data-label': 'UUID', class: 'mono small' }, f.uuid || '—')))))
        : h('p', { class: 'empty' }, `No filesystem found in ${browsing.disk}.`));
  }

  /** The path as breadcrumbs: the disk (its filesystems), then each directory, each a button. */
  function crumbs(fs, path) {
    const parts = path.split('/').filter(Boolean);
    const items = [h('li', null, h('button', { type: 'button', class: 'btn link', onclick: () => showFilesystems(),
      'aria-current': fs ? null : 'location' }, `${browsing.disk}`))];
    if (fs) {
      items.push(h('li', null, h('button', { type: 'button', class: 'btn link mono', onclick: () => openDir(fs, '/'),
        'aria-current': parts.length ? null : 'location' }, `${fs} /`)));
      parts.forEach((p, i) => {
        const to = `/${parts.slice(0, i + 1).join('/')}`;
        items.push(h('li', null, h('button', { type: 'button', class: 'btn link mono', onclick: () => openDir(fs, to),
          'aria-current': i === parts.length - 1 ? 'location' : null }, p)));
      });
    }
    return h('nav', { class: 'path-crumbs', 'aria-label': 'Path' }, h('ol', null, items));
  }

  const join = (dir, name) => (dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`);

  function query(fs, path, extra = '') {
    return `path=${encodeURIComponent(path)}${fs ? `&filesystem=${encodeURIComponent(fs)}` : ''}${extra}`;
  }

  async function openDir(fs, path, pageToken, appendTo) {
    const my = pageToken ? browsing.seq : ++browsing.seq;
    let data;
    try {
      data = await filesGet(`${diskUrl()}/files?${query(fs, path, `&limit=500${pageToken ? `&page_token=${encodeURIComponent(pageToken)}` : ''}`)}`, my, Boolean(appendTo));
    } catch (e) {
      if (e.name === 'AbortError' || my !== browsing?.seq) return;
      const p = problemView(e, { context: `${path} could not be listed.` });
      if (appendTo) appendTo.after(p);
      else setBody(crumbs(fs, path), p);
      return;
    }
    if (my !== browsing?.seq) return;
    browsing.opened = true;
    const usedFs = data.filesystem ?? fs;
    const dir = data.path ?? path;
    browsing.fs = usedFs;
    browsing.path = dir;
    const rows = (data.items ?? []).map((f) => fileRow(usedFs, dir, f));
    const more = data.next_page_token ? h('button', { type: 'button', class: 'btn', id: 'files-more', onclick: (ev) => {
      ev.currentTarget.disabled = true;
      ev.currentTarget.textContent = 'Loading more…';
      openDir(usedFs, dir, data.next_page_token, ev.currentTarget);
    } }, 'Show more') : null;
    if (appendTo) {
      document.querySelector('#files-table tbody')?.append(...rows);
      if (more) appendTo.replaceWith(more);
      else appendTo.remove();
      // The button pressed is gone: the keyboard goes on from the first row it brought.
      (rows[0]?.querySelector('a, button') ?? rows[0])?.focus?.();
      announce(`${rows.length} more entries.`);
      return;
    }
    const parent = dir === '/' ? null : dir.replace(/\/[^/]+\/?$/, '') || '/';
    setBody(
      crumbs(usedFs, dir),
      rows.length || parent ? h('table', { class: 'grid files', id: 'files-table', 'data-path': dir },
        h('caption', { class: 'visually-hidden' }, `Directory ${dir} of ${usedFs}`),
        h('thead', null, h('tr', null, ['Name', 'Type', 'Size', 'Mode', 'Modified']
          .map((t) => h('th', { scope: 'col', class: t === 'Size' ? 'num' : null }, t)))),
        h('tbody', null,
          parent ? h('tr', { class: 'up' }, h('td', { 'data-label': 'Name', colspan: '5' },
            h('button', { type: 'button', class: 'btn link', onclick: () => openDir(usedFs, parent),
              'aria-label': `Up to ${parent}` }, '.. (up)'))) : null,
          rows)) : null,
      !rows.length ? h('p', { class: 'empty' }, `${dir} is empty.`) : null,
      more);
    announce(`${dir}: ${rows.length}${data.next_page_token ? '+' : ''} entries.`);
  }

  function fileRow(fs, dir, f) {
    const path = join(dir, f.name);
    let name;
    if (f.type === 'directory') {
      name = h('button', { type: 'button', class: 'btn link', onclick: () => openDir(fs, path),
        'aria-label': `Open directory ${f.name}` }, `${f.name}/`);
    } else if (f.type === 'file') {
      const href = `${diskUrl()}/files/content?${query(fs, path)}`;
      name = h('a', { href, download: f.name, 'data-path': path, onclick: (ev) => download(ev, href, f.name),
        'aria-label': `Download ${f.name} (${fmtBytes(f.size)})` }, f.name);
    } else {
      name = h('span', null, f.name, f.type === 'symlink' && f.target ? h('span', { class: 'muted' }, ` → ${f.target}`) : null);
    }
    return h('tr', { 'data-name': f.name, 'data-type': f.type },
      h('td', { 'data-label': 'Name' }, name),
      h('td', { 'data-label': 'Type' }, f.type ?? '—'),
      h('td', { 'data-label': 'Size', class: 'num' }, f.type === 'directory' ? '—' : fmtBytes(f.size)),
      h('td', { 'data-label': 'Mode', class: 'mono' }, f.mode ?? '—'),
      h('td', { 'data-label': 'Modified', title: f.mtime ? fmtTime(f.mtime) : null }, f.mtime ? fmtTime(f.mtime) : '—'));
  }

  /** With a token, a plain link would go without it: fetch the file and save it from memory. */
  async function download(ev, href, name) {
    if (!getToken()) return; // the link itself downloads
    ev.preventDefault();
    try {
      const res = await fetch(href, { headers: authHeaders(), cache: 'no-store' });
      if (!res.ok) throw new ApiError(await readProblem(res), res.status);
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      ev.target.closest('tr')?.after(h('tr', null, h('td', { colspan: '5' }, problemView(e, { context: `${name} could not be downloaded.` }))));
    }
  }

  return { el, runNow, mount, browse, resume, load: () => loadMounts() };
}
