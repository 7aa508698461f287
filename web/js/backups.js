// The backups tab: the catalog as a table, a chart of stored size and duration over time, the
// "Back up now" dialog, live progress bars (driven by /v1/events, polled when the stream is
// not there), restore and verify with their results, the exports of pull backups, and on each
// completed backup the ways to recover from it (recovery.js): Run now, Mount, Browse files;
// and its offsite copies: "Copy to remote" (followed to its end) and each copy's state.

import { h, replace, badge, stateBadge, fmtBytes, fmtDuration, fmtTime, fmtAge, secondsBetween, shortId, announce } from './dom.js';
import { api, getAll, seg, problemView, isUnavailable } from './api.js';
import { formDialog, textField, radioGroup, field, withFieldErrors } from './dialog.js';
import { followJob, jobIdFrom, percentOf, isFinal, onEvent, jobOf } from './events.js';
import { sizeDurationChart } from './chart.js';
import { recoveryArea } from './recovery.js';
import { listRemotes } from './remotes.js';
import { defineField, withDefine, restoreResultView } from './restore.js';

/** Copies requests in flight at most: a row's copies are read when it comes into view. */
const COPIES_PARALLEL = 3;
const COPY_TONES = { uploading: 'info', completed: 'ok', failed: 'bad' };

/** Every URI a pull backup offers for a disk: NBD exports the API names, whatever the field. */
export function exportUris(obj) {
  const out = [];
  const look = (o, depth) => {
    if (!o || typeof o !== 'object' || depth > 3) return;
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === 'string' && /(^|_)(uri|url)$/.test(k)) out.push([k, v]);
      else if (v && typeof v === 'object') look(v, depth + 1);
    }
  };
  look(obj, 0);
  return out;
}

export function backupsTab(panel, ctx) {
  const { domainName } = ctx;
  const base = `/v1/domains/${seg(domainName)}/backups`;
  const msg = h('div', { 'aria-live': 'polite' });
  const jobs = h('div', { class: 'jobs', id: 'backup-jobs', 'aria-label': 'Running backups' });
  const chart = h('div', { class: 'chart-wrap' });
  const table = h('div', null, h('p', { class: 'muted' }, 'Loading backups…'));
  const sup = ctx.domain?.supports ?? {};
  const can = sup.push_backup?.supported || sup.pull_backup?.supported;
  const why = [sup.push_backup, sup.pull_backup].find((f) => f && !f.supported)?.reason;
  const recovery = recoveryArea({ ...ctx, base });
  replace(panel,
    h('h2', { class: 'visually-hidden' }, 'Backups'),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'btn primary', onclick: () => backupDialog() }, 'Back up now'),
      h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'btn', onclick: () => { load(); recovery.load(); } }, 'Refresh')),
    ctx.domain && !can ? h('p', { class: 'notice' }, `Backups are not supported for this domain: ${why ?? 'no reason given'}`) : null,
    msg, jobs, recovery.el, chart, table);

  let items = [];
  const watching = new Map(); // job id -> progress box
  const copies = new Map(); // backup id -> [BackupCopy]
  const copiesQueue = []; // backup ids whose rows came into view, to read
  let copiesBusy = 0; // copies requests in flight
  let copiesSeen = null; // the IntersectionObserver of the completed backups' rows

  async function load() {
    try {
      const data = await getAll(base, { signal: ctx.signal });
      items = data.items ?? [];
      draw();
      for (const b of items) if ((b.state === 'running') && b.job_id) watch(b.job_id, b);
      recovery.resume(items);
      watchCopies();
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(chart);
      replace(table, problemView(e, {
        context: isUnavailable(e) ? 'This server does not offer backups here.' : 'The backup catalog could not be read.',
      }));
    }
  }

  /**
   * Reads the copies of each completed backup once its row comes into view (one request
   * each, COPIES_PARALLEL at a time; a catalog of hundreds asks only for the rows looked at)
   * and shows them in the row. Called after each load's draw: rows are read again then.
   */
  function watchCopies() {
    copiesSeen?.disconnect();
    copiesQueue.length = 0;
    const completed = new Set(items.filter((b) => b.state === 'completed').map((b) => b.id));
    const rows = [...table.querySelectorAll('tr[data-backup]')].filter((el) => completed.has(el.dataset.backup));
    const want = (id) => { copiesQueue.push(id); pumpCopies(); };
    copiesSeen = new IntersectionObserver((entries, seen) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        seen.unobserve(e.target);
        want(e.target.dataset.backup);
      }
    }, { rootMargin: '200px 0px' });
    for (const el of rows) copiesSeen.observe(el);
  }

  function pumpCopies() {
    while (copiesBusy < COPIES_PARALLEL && copiesQueue.length && !ctx.signal?.aborted) {
      const id = copiesQueue.shift();
      copiesBusy++;
      readCopies(id).finally(() => { copiesBusy--; pumpCopies(); });
    }
  }

  async function readCopies(id) {
    try {
      const { data } = await api('GET', `${base}/${seg(id)}/copies`, undefined, { signal: ctx.signal, noPrompt: true });
      copies.set(id, data.items ?? []);
    } catch {
      return; // an older server, or no access: the row shows no copies
    }
    const el = table.querySelector(`[data-copies="${CSS.escape(id)}"]`);
    if (el) replace(el, copiesView(id));
  }

  function copiesView(id) {
    const list = copies.get(id) ?? [];
    if (!list.length) return null;
    return h('ul', { class: 'copies small', 'aria-label': 'Offsite copies' }, list.map((c) => h('li', { 'data-copy': c.remote },
      'copy in ', h('b', null, c.remote), ' ', badge(c.state, COPY_TONES[c.state] ?? 'muted', c.error ?? ''),
      c.state === 'completed' && c.object_bytes ? h('span', { class: 'muted' }, ` ${fmtBytes(c.object_bytes)}`) : null,
      c.finished_at ? h('span', { class: 'muted', title: fmtTime(c.finished_at) }, ` ${fmtAge(c.finished_at)}`) : null,
      c.state === 'failed' && c.error ? h('div', { class: 'copy-error' }, c.error) : null)));
  }

  function duration(b) {
    if (typeof b.duration_ms === 'number') return b.duration_ms / 1000;
    return b.finished_at ? secondsBetween(b.started_at, b.finished_at) : null;
  }

  function draw() {
    if (!items.length) {
      replace(chart);
      replace(table, h('p', { class: 'empty' }, 'No backups of this domain yet. “Back up now” takes the first.'));
      return;
    }
    const byTime = [...items].sort((a, b) => String(a.started_at).localeCompare(String(b.started_at)));
    const done = byTime.filter((b) => b.state === 'completed' || b.state === 'ready').slice(-40);
    replace(chart, done.length ? [
      h('h3', null, 'Stored size and duration'),
      // Drawn at the width it is shown at, so that its labels stay readable on a phone.
      sizeDurationChart(done.map((b) => ({ at: b.started_at, bytes: b.stored_bytes ?? 0, seconds: duration(b),
        label: `${b.type} ${fmtTime(b.started_at)}` })), { width: Math.max(320, Math.min(960, panel.clientWidth || 720)) }),
      h('div', { class: 'legend' },
        h('span', null, h('span', { class: 'sw', style: 'background:var(--accent)' }), 'stored size (left)'),
        h('span', null, h('span', { class: 'sw', style: 'background:var(--warn)' }), 'duration (right)')),
    ] : null);
    const newest = [...byTime].reverse();
    replace(table, h('table', { class: 'grid', id: 'backups-table' },
      h('caption', { class: 'visually-hidden' }, 'Backup catalog, newest first'),
      h('thead', null, h('tr', null, ['Started', 'Type', 'Mode', 'Chain', 'Stored', 'Duration', 'State', 'Actions']
        .map((t) => h('th', { scope: 'col', class: t === 'Stored' || t === 'Duration' ? 'num' : null }, t)))),
      h('tbody', null, newest.map(row))));
  }

  function row(b) {
    const err = b.error && typeof b.error === 'object' ? b.error : null;
    const exports = b.mode === 'pull' && (b.state === 'ready' || b.state === 'running') ? pullExports(b) : null;
    return h('tr', { 'data-backup': b.id },
      h('td', { 'data-label': 'Started', title: fmtTime(b.started_at) }, h('span', null, fmtAge(b.started_at),
        h('div', { class: 'muted small mono' }, shortId(b.id)))),
      h('td', { 'data-label': 'Type' }, h('span', null, b.type,
        b.base_checkpoint ? h('div', { class: 'muted small' }, `since ${b.base_checkpoint}`) : null)),
      h('td', { 'data-label': 'Mode' }, b.mode),
      h('td', { 'data-label': 'Chain', title: b.chain_id ?? '' }, h('span', { class: 'mono' }, shortId(b.chain_id))),
      h('td', { 'data-label': 'Stored', class: 'num' }, fmtBytes(b.stored_bytes)),
      h('td', { 'data-label': 'Duration', class: 'num' }, fmtDuration(duration(b))),
      h('td', { 'data-label': 'State' }, h('span', null, stateBadge(b.state),
        verification(b),
        b.location === 'remote' ? h('div', { class: 'muted small', title: 'Its images are in the remote\u2019s bucket only; restore it from the remote' },
          `offsite only (remote ${b.remote})`) : null,
        err ? h('div', { class: 'small' }, h('b', null, err.title ?? 'Error'), err.detail ? `: ${err.detail}` : '') : null,
        exports,
        h('div', { 'data-copies': b.id }, copiesView(b.id)))),
      h('td', { 'data-label': 'Actions', class: 'actions-cell' },
        b.state === 'completed' && b.location !== 'remote' ? [
          h('button', { type: 'button', class: 'btn small', onclick: () => verify(b),
            'aria-label': `Verify backup ${shortId(b.id)}` }, 'Verify'),
          h('button', { type: 'button', class: 'btn small', onclick: () => restoreDialog(b),
            'aria-label': `Restore backup ${shortId(b.id)}` }, 'Restore…'),
          h('button', { type: 'button', class: 'btn small', onclick: () => recovery.runNow(b), 'data-action': 'run-now',
            'aria-label': `Run backup ${shortId(b.id)} now as a new domain` }, 'Run now…'),
          h('button', { type: 'button', class: 'btn small', onclick: () => recovery.mount(b), 'data-action': 'mount',
            'aria-label': `Mount backup ${shortId(b.id)}` }, 'Mount'),
          h('button', { type: 'button', class: 'btn small', onclick: () => recovery.browse(b), 'data-action': 'browse',
            'aria-label': `Browse the files of backup ${shortId(b.id)}` }, 'Browse files'),
          h('button', { type: 'button', class: 'btn small', onclick: () => copyDialog(b), 'data-action': 'copy',
            'aria-label': `Copy backup ${shortId(b.id)} to a remote` }, 'Copy to remote…'),
        ] : null,
        b.mode === 'pull' && b.state === 'ready' && b.job_id ? h('button', { type: 'button', class: 'btn small',
          onclick: () => finishPull(b), 'aria-label': `End the export of backup ${shortId(b.id)}` }, 'End export') : null));
  }

  /** The last verification ({ok, checked_at, problems}), as a badge with its time. */
  function verification(b) {
    const v = b.verification;
    if (!v || typeof v.ok !== 'boolean') return null;
    const problems = v.problems ?? [];
    return h('div', null, badge(v.ok ? 'verified' : 'verify failed', v.ok ? 'ok' : 'bad', problems.join('\n')),
      v.checked_at ? h('span', { class: 'muted small', title: fmtTime(v.checked_at) }, ` ${fmtAge(v.checked_at)}`) : null,
      !v.ok && problems.length ? h('ul', { class: 'small' }, problems.map((p) => h('li', null, p))) : null);
  }

  function pullExports(b) {
    const uris = exportUris(b);
    const http = (b.disks ?? []).map((d) => d.target).filter(Boolean).map((t) => [t,
      `${location.origin}${base}/${seg(b.id)}/disks/${seg(t)}/data`,
      `${location.origin}${base}/${seg(b.id)}/disks/${seg(t)}/extents?context=dirty`]);
    return h('div', { class: 'small' }, h('b', null, 'Exports'),
      h('dl', { class: 'kv' },
        uris.map(([k, v]) => [h('dt', null, k), h('dd', { class: 'uri mono' }, v)]),
        http.map(([t, data, ext]) => [h('dt', null, `${t} data`), h('dd', { class: 'uri mono' }, data),
          h('dt', null, `${t} extents`), h('dd', { class: 'uri mono' }, ext)])));
  }

  /** A progress bar for job id until it ends; the catalog is read again then. */
  function watch(id, backup, label) {
    if (watching.has(id)) return watching.get(id).done;
    const bar = h('span', { style: 'width:0%' });
    const pctText = h('span', null, 'queued');
    const barBox = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100',
      'aria-valuenow': '0', 'aria-label': `Progress of backup ${shortId(backup?.id ?? id)}` }, bar);
    const box = h('div', { class: 'job', 'data-job': id },
      h('div', { class: 'job-line' },
        h('span', null, label ?? `Backup ${shortId(backup?.id)} · ${backup?.type ?? ''} ${backup?.mode ?? ''}`),
        pctText),
      barBox);
    jobs.append(box);
    const update = (j) => {
      if (!j) return;
      const pct = percentOf(j);
      const shown = pct ?? 0;
      bar.style.width = `${shown}%`;
      barBox.setAttribute('aria-valuenow', String(Math.round(shown)));
      const sizes = j.progress?.bytes_total ? ` · ${fmtBytes(j.progress.bytes_done)} of ${fmtBytes(j.progress.bytes_total)}` : '';
      pctText.textContent = `${j.state}${pct === null ? '' : ` · ${Math.round(pct)}%`}${sizes}`;
      box.classList.toggle('done', j.state === 'succeeded');
      box.classList.toggle('failed', j.state === 'failed' || j.state === 'cancelled');
    };
    const done = followJob(id, update).then((final) => {
      watching.delete(id);
      if (final?.state === 'succeeded') {
        announce(`Backup ${shortId(backup?.id)} finished.`);
        setTimeout(() => box.remove(), 4000);
      } else if (final) {
        box.append(problemView(final.error ?? { title: `The job ended ${final.state}`, detail: '' }));
      }
      load();
      return final;
    });
    watching.set(id, { box, done });
    return done;
  }

  // Backup events may name backups the UI did not start (another client, a schedule).
  const off = onEvent(({ data }) => {
    const job = jobOf(data);
    if (job && job.domain === domainName && /backup/.test(job.kind ?? '') && !isFinal(job) && !watching.has(job.id)) {
      watch(job.id, null, `${job.kind} ${shortId(job.id)}`);
    }
  });

  async function backupDialog() {
    const checkpoints = await getAll(`/v1/domains/${seg(domainName)}/checkpoints`, { noPrompt: true })
      .then((d) => d.items ?? []).catch(() => []);
    // A differential counts from a checkpoint of the current chain made by a backup.
    const made = new Set(items.filter((x) => x.state === 'completed' && x.checkpoint).map((x) => x.checkpoint));
    const usable = checkpoints.filter((c) => (c.state === 'ok' || c.state === 'redefined') && (!made.size || made.has(c.name)));
    const pushOk = sup.push_backup?.supported !== false;
    const pullOk = sup.pull_backup?.supported !== false;
    const incOk = sup.incremental?.supported !== false;
    const body = [
      radioGroup('type', 'Type', [
        ['auto', 'Auto', { hint: 'incremental when the chain allows, else full' }],
        ['full', 'Full', { hint: 'the whole disks; starts a new chain' }],
        ['incremental', 'Incremental', { hint: 'changes since the last backup', disabled: !incOk }],
        ['differential', 'Differential', { hint: 'changes since the chain’s full backup', disabled: !incOk }],
      ], 'auto'),
      radioGroup('mode', 'Mode', [
        ['push', 'Push', { hint: pushOk ? 'QEMU writes into the vault' : sup.push_backup?.reason, disabled: !pushOk }],
        ['pull', 'Pull', { hint: pullOk ? 'disks exported for a client to read (NBD / HTTP)' : sup.pull_backup?.reason, disabled: !pullOk }],
      ], pushOk ? 'push' : 'pull'),
      usable.length ? [
        h('label', { for: 'since-checkpoint' }, 'Differential: changes since checkpoint'),
        h('select', { id: 'since-checkpoint', name: 'since' },
          h('option', { value: '' }, 'the chain’s full backup (default)'),
          usable.map((c) => h('option', { value: c.name }, `${c.name} (${fmtAge(c.created_at)})`))),
      ] : null,
      !incOk ? h('p', { class: 'hint' }, `Incremental backups: ${sup.incremental?.reason ?? 'not supported'}`) : null,
    ];
    const r = await formDialog({
      title: `Back up ${domainName} now`, body, submitLabel: 'Start backup', id: 'backup-dialog',
      submit: async (form) => {
        const f = new FormData(form);
        const req = { type: f.get('type') };
        // Push is the default: "mode" is only sent for a pull backup.
        if (f.get('mode') === 'pull') req.mode = 'pull';
        const since = f.get('since');
        if (since && req.type === 'differential') req.since = since;
        return api('POST', base, req);
      },
    });
    if (!r) return;
    const b = r.data ?? {};
    const jobId = b.job_id ?? (r.location?.match(/\/v1\/jobs\/([^/?#]+)/) ?? [])[1];
    replace(msg, h('p', { class: 'notice', role: 'status' }, `Backup ${shortId(b.id)} (${b.type ?? ''}, ${b.mode ?? ''}) started.`));
    announce('Backup started.');
    if (jobId) watch(jobId, b);
    load();
  }

  async function verify(b) {
    replace(msg, h('p', { class: 'muted', role: 'status' }, `Verifying backup ${shortId(b.id)}…`));
    try {
      const r = await api('POST', `${base}/${seg(b.id)}/verify`, {});
      let result = r.data;
      if (r.status === 202) {
        const id = r.data?.id ?? (r.location?.match(/\/v1\/jobs\/([^/?#]+)/) ?? [])[1];
        const final = await watch(id, b, `Verifying ${shortId(b.id)}`);
        if (final?.state !== 'succeeded') {
          replace(msg, problemView(final?.error ?? { title: 'Verification did not finish', detail: final?.state ?? '' },
            { context: `Backup ${shortId(b.id)} could not be verified.` }));
          return;
        }
        result = final.result;
      }
      showVerification(b, result);
    } catch (e) {
      replace(msg, problemView(e, { context: `Backup ${shortId(b.id)} could not be verified.` }));
    }
    load();
  }

  async function restoreDialog(b) {
    const body = [
      h('p', null, `Writes the disks of backup ${shortId(b.id)} (${b.type}, ${fmtTime(b.started_at)}) as new files. The domain ${domainName} is not touched.`),
      textField('target_dir', 'Target folder', { required: true, placeholder: '/var/lib/virtvault/vault/restore/…' },
        'An absolute folder on the server inside a restore root (--restore-roots; default <vault>/restore). Missing folders are made; existing files are never replaced.'),
      radioGroup('format', 'Format', [['qcow2', 'qcow2'], ['raw', 'raw']], 'qcow2'),
      defineField(),
    ];
    const r = await formDialog({
      title: `Restore backup ${shortId(b.id)}`, body, submitLabel: 'Restore', id: 'restore-dialog',
      submit: async (form) => {
        const f = new FormData(form);
        const req = withDefine({ target_dir: f.get('target_dir'), format: f.get('format') }, form);
        return withFieldErrors(form, () => api('POST', `${base}/${seg(b.id)}/restore`, req));
      },
    });
    if (!r) return;
    let result = r.data;
    if (r.status === 202) {
      const id = r.data?.id ?? (r.location?.match(/\/v1\/jobs\/([^/?#]+)/) ?? [])[1];
      const final = await watch(id, b, `Restoring ${shortId(b.id)}`);
      if (final?.state !== 'succeeded') {
        replace(msg, problemView(final?.error ?? { title: 'The restore did not finish', detail: final?.state ?? '' },
          { context: `Backup ${shortId(b.id)} was not restored.` }));
        return;
      }
      result = final.result;
    }
    const text = `Restore of backup ${shortId(b.id)} succeeded.`;
    replace(msg, restoreResultView('restore-result', text, result));
    announce(text);
  }

  /** The verification's answer ({ok, files, backups, checked_at, problems}) as a status box. */
  function showVerification(b, result) {
    const ok = result?.ok === true;
    const problems = result?.problems ?? [];
    const text = ok ? `Backup ${shortId(b.id)} verified: ${result.files ?? '?'} files of ${result.backups ?? '?'} backups match.`
      : `Backup ${shortId(b.id)} failed verification.`;
    replace(msg, h('div', { class: ok ? 'result' : 'problem', role: 'status', id: 'verification-result' },
      h('h3', null, 'Verification result'), h('p', null, text),
      result?.checked_at ? h('p', { class: 'small muted' }, `checked ${fmtTime(result.checked_at)}`) : null,
      problems.length ? h('ul', null, problems.map((p) => h('li', null, p))) : null));
    announce(text);
  }

  async function copyDialog(b) {
    let remotes = [];
    let why = null;
    try {
      remotes = await listRemotes({ noPrompt: true });
    } catch (e) {
      why = e;
    }
    const body = [
      h('p', null, `Copies backup ${shortId(b.id)} (${b.type}, ${fmtTime(b.started_at)}) and the backups it stands on to a remote's bucket; those already there are skipped.`),
      why ? problemView(why, { context: 'The remotes could not be listed.' }) : null,
      !why && !remotes.length ? h('p', { class: 'notice' }, 'No remotes yet: add one on the ', h('a', { href: '#/remotes' }, 'Remotes'), ' page.') : null,
      h('label', { for: 'copy-remote' }, 'Remote'),
      h('select', { id: 'copy-remote', name: 'remote', required: true, 'aria-describedby': 'copy-remote-error' },
        remotes.map((r) => h('option', { value: r.name }, `${r.name} (${r.prefix ? `${r.bucket}/${r.prefix}` : r.bucket})`))),
      h('p', { class: 'field-error', id: 'copy-remote-error', 'data-error-for': 'remote' }),
      field('bandwidth', 'Bandwidth limit (MiB/s)', { inputmode: 'decimal', autocomplete: 'off' }, 'Empty: no limit.').nodes,
    ];
    let remote = '';
    const r = await formDialog({
      title: `Copy backup ${shortId(b.id)} to a remote`, body, submitLabel: 'Start copy', id: 'copy-dialog',
      submit: async (form) => {
        const f = new FormData(form);
        const req = { remote: String(f.get('remote') ?? '') };
        remote = req.remote;
        const bw = String(f.get('bandwidth') ?? '').trim();
        if (bw) req.bandwidth = /^[0-9]+(\.[0-9]+)?$/.test(bw) ? Math.round(Number(bw) * 1048576) : bw;
        return withFieldErrors(form, () => api('POST', `${base}/${seg(b.id)}/copies`, req));
      },
    });
    if (!r) return;
    const id = r.data?.id ?? jobIdFrom(r.location);
    replace(msg, h('p', { class: 'notice', role: 'status' }, `Copy of backup ${shortId(b.id)} started.`));
    announce('Copy started.');
    if (!id) { load(); return; }
    const final = await watch(id, b, `Copy of ${shortId(b.id)} ${remote ? `to ${remote}` : 'to a remote'}`);
    if (final?.state === 'succeeded') {
      const text = `Backup ${shortId(b.id)} copied.`;
      replace(msg, h('p', { class: 'notice', role: 'status', id: 'copy-result' }, text));
      announce(text);
    } else {
      replace(msg, problemView(final?.error ?? { title: 'The copy did not finish', detail: final?.state ?? '' },
        { context: `Backup ${shortId(b.id)} was not copied.` }));
    }
  }

  async function finishPull(b) {
    try {
      await api('DELETE', `/v1/jobs/${seg(b.job_id)}`);
      replace(msg, h('p', { class: 'notice', role: 'status' }, `The export of backup ${shortId(b.id)} is ending.`));
    } catch (e) {
      replace(msg, problemView(e, { context: 'The export could not be ended.' }));
    }
    load();
  }

  load();
  recovery.load();
  return () => { off(); copiesSeen?.disconnect(); };
}
