// The remotes page (#/remotes): the S3-compatible buckets that backups are copied to. Lists
// them; adds, edits and deletes one in a dialog (the secret is write-only: the API answers
// secret_set, the form never shows it back); "Check" shows what the bucket allows (versioning,
// object lock) or the step that failed. A remote's bucket contents come from its manifests:
// restore one on this host (followed to its end; optionally defining a new domain on the
// restored disks) or delete it (a lock answers 409 with its due date). Also what the backups
// tab needs: the list of remotes.

import { h, replace, badge, stateBadge, fmtBytes, fmtTime, fmtAge, shortId, announce } from './dom.js';
import { api, getAll, seg, problemView } from './api.js';
import { formDialog, radioGroup, field, showFieldErrors, withFieldErrors } from './dialog.js';
import { followJob, jobIdFrom, percentOf } from './events.js';
import { defineField, withDefine, restoreResultView } from './restore.js';

let seq = 0;

/** Every remote, all pages of GET /v1/remotes. */
export async function listRemotes(opts = {}) {
  return (await getAll('/v1/remotes', opts)).items ?? [];
}

/** The check's answer as a small report: ok and what the bucket allows, or the failed step. */
function checkView(name, c) {
  // A check that failed at the bucket step could not read its settings.
  const yes = (v) => (!c.ok && c.failed_step === 'bucket' ? 'not read' : v ? 'on' : 'off');
  return h('div', { class: c.ok ? 'result' : 'problem', role: 'status', id: 'check-result', 'data-remote': name },
    h('h3', null, `Check of ${name}: `, c.ok ? badge('ok', 'ok') : badge('failed', 'bad')),
    c.ok ? null : h('p', null, 'Failed at step ', h('b', { class: 'failed-step' }, c.failed_step ?? '?'),
      c.detail ? [': ', h('span', { class: 'check-detail' }, c.detail)] : null),
    h('dl', { class: 'kv' },
      h('dt', null, 'Versioning'), h('dd', { 'data-check': 'versioning' }, yes(c.versioning)),
      h('dt', null, 'Object lock'), h('dd', { 'data-check': 'object_lock' }, yes(c.object_lock)),
      h('dt', null, 'Encrypted'), h('dd', null, c.encrypted ? `yes (key ${shortId(c.key_id)})` : 'no'),
      h('dt', null, 'Took'), h('dd', null, `${c.elapsed_ms ?? '?'} ms`)));
}

export function remotesView(main, params, { signal }) {
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading remotes…');
  const newBtn = h('button', { type: 'button', class: 'btn primary', onclick: () => editDialog(null) }, 'New remote');
  const msg = h('div', { 'aria-live': 'polite' });
  const slot = h('div');
  const contents = h('section', { id: 'remote-contents', 'aria-labelledby': 'remote-contents-title', hidden: true });
  replace(main,
    h('h1', { tabindex: '-1' }, 'Remotes'),
    h('p', { class: 'muted' }, 'Buckets of S3-compatible object stores that backups are copied to, and restored from on any host.'),
    h('div', { class: 'toolbar' },
      newBtn,
      h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'btn', onclick: () => load() }, 'Refresh')),
    status, msg, slot, contents);
  document.title = 'Remotes · virtvault';

  let gen = 0;
  let focusNext = null;
  let shown = null; // the remote whose bucket is listed

  async function load() {
    const my = ++gen;
    let items;
    try {
      items = await listRemotes({ signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(slot, problemView(e, { context: 'The remotes could not be listed.' }));
      status.textContent = '';
      return;
    }
    if (my !== gen) return;
    const focused = slot.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    status.textContent = items.length ? `${items.length} ${items.length === 1 ? 'remote' : 'remotes'}` : '';
    replace(slot, items.length ? h('table', { class: 'grid', id: 'remotes-table' },
      h('caption', { class: 'visually-hidden' }, 'Remotes'),
      h('thead', null, h('tr', null, ['Name', 'Endpoint', 'Bucket / prefix', 'Encrypted', 'Lock (days)', 'Actions']
        .map((t) => h('th', { scope: 'col', class: t === 'Lock (days)' ? 'num' : null }, t)))),
      h('tbody', null, items.map(row)))
      : h('p', { class: 'empty' }, 'No remotes yet. “New remote” adds a bucket to copy backups to.'));
    const key = focusNext ?? focused;
    focusNext = null;
    if (key) (slot.querySelector(`[data-key="${CSS.escape(key)}"]`) ?? newBtn).focus();
    if (shown && !items.some((r) => r.name === shown)) {
      shown = null;
      contents.hidden = true;
    }
  }

  function row(r) {
    const b = (text, action, attrs = {}) => h('button', { type: 'button', class: `btn small${attrs.danger ? ' danger' : ''}`,
      onclick: action, 'aria-label': `${attrs.label ?? text} ${r.name}`, dataset: { key: `${r.name}/${text}` } }, text);
    return h('tr', { 'data-remote': r.name },
      h('th', { scope: 'row', 'data-label': 'Name' }, r.name),
      h('td', { 'data-label': 'Endpoint', class: 'mono' }, h('span', { class: 'uri' }, r.endpoint)),
      h('td', { 'data-label': 'Bucket / prefix', class: 'mono' }, r.prefix ? `${r.bucket}/${r.prefix}` : r.bucket),
      h('td', { 'data-label': 'Encrypted' }, r.encrypted ? badge('encrypted', 'ok', r.key_file ?? '') : badge('no', 'muted')),
      h('td', { 'data-label': 'Lock (days)', class: 'num' }, r.lock_days ? String(r.lock_days) : '—'),
      h('td', { 'data-label': 'Actions', class: 'actions-cell' },
        b('Check', () => check(r), { label: 'Check remote' }),
        b('Backups', () => showContents(r.name), { label: 'Backups in remote' }),
        b('Edit…', () => editDialog(r), { label: 'Edit remote' }),
        b('Delete', () => remove(r), { label: 'Delete remote', danger: true })));
  }

  async function check(r) {
    replace(msg, h('p', { class: 'muted', role: 'status' }, `Checking ${r.name}…`));
    try {
      const { data } = await api('POST', `/v1/remotes/${seg(r.name)}:check`);
      replace(msg, checkView(r.name, data));
      announce(data.ok ? `Remote ${r.name}: check ok.` : `Remote ${r.name}: check failed at ${data.failed_step}.`);
    } catch (e) {
      replace(msg, problemView(e, { context: `Remote ${r.name} could not be checked.` }));
    }
  }

  async function remove(r) {
    const ok = await formDialog({
      title: `Delete remote ${r.name}?`, danger: true, focus: 'cancel', submitLabel: 'Delete', id: 'remote-delete-dialog',
      body: h('p', null, `Its settings and secret go; what the bucket ${r.bucket} holds stays there.`),
      submit: () => api('DELETE', `/v1/remotes/${seg(r.name)}`),
    });
    if (!ok) return;
    const text = `Remote ${r.name} deleted.`;
    replace(msg, h('p', { class: 'notice', role: 'status' }, text));
    announce(text);
    focusNext = 'none';
    load();
  }

  async function editDialog(r) {
    const res = await formDialog(remoteForm(r));
    if (!res) return;
    const name = res.data?.name ?? r?.name;
    const text = `Remote ${name} ${r ? 'saved' : 'added'}.`;
    replace(msg, h('p', { class: 'notice', role: 'status' }, text));
    announce(text);
    focusNext = `${name}/Check`;
    load();
  }

  // --- a remote's bucket ---

  const domainF = field('domain', 'Domain (name or UUID; empty: all)', { autocomplete: 'off', spellcheck: 'false', value: params.query?.get('domain') ?? '' });
  const filterForm = h('form', { class: 'toolbar filter', novalidate: true, onsubmit: (ev) => { ev.preventDefault(); listContents(); } },
    h('div', null, domainF.nodes), h('button', { type: 'submit', class: 'btn' }, 'Filter'));
  const contentsTitle = h('h2', { id: 'remote-contents-title', tabindex: '-1' });
  const contentsMsg = h('div', { 'aria-live': 'polite' });
  const jobs = h('div', { class: 'jobs', id: 'remote-jobs', 'aria-label': 'Restores from the bucket' });
  const contentsSlot = h('div');
  replace(contents, contentsTitle, filterForm, contentsMsg, jobs, contentsSlot);

  function showContents(name) {
    shown = name;
    contentsTitle.textContent = `Backups in ${name}`;
    contents.hidden = false;
    replace(contentsMsg);
    listContents();
    contentsTitle.focus();
  }

  let cgen = 0;
  async function listContents() {
    const name = shown;
    if (!name) return;
    const my = ++cgen;
    replace(contentsSlot, h('p', { class: 'muted', role: 'status' }, 'Reading the bucket…'));
    const dom = domainF.input.value.trim();
    let items;
    try {
      showFieldErrors(filterForm, null);
      items = (await getAll(`/v1/remotes/${seg(name)}/backups${dom ? `?domain=${encodeURIComponent(dom)}` : ''}`, { signal })).items ?? [];
    } catch (e) {
      if (e.name === 'AbortError' || my !== cgen) return;
      showFieldErrors(filterForm, e);
      replace(contentsSlot, problemView(e, { context: `The bucket of ${name} could not be listed.` }));
      return;
    }
    if (my !== cgen) return;
    const sorted = [...items].sort((a, b) => String(b.started_at).localeCompare(String(a.started_at)));
    replace(contentsSlot, sorted.length ? h('table', { class: 'grid', id: 'remote-backups-table' },
      h('caption', { class: 'visually-hidden' }, `Backups in ${name}, newest first`),
      h('thead', null, h('tr', null, ['Domain', 'Started', 'Type', 'Size in bucket', 'Copied', 'Locked until', 'Actions']
        .map((t) => h('th', { scope: 'col', class: t === 'Size in bucket' ? 'num' : null }, t)))),
      h('tbody', null, sorted.map((x) => contentsRow(name, x))))
      : h('p', { class: 'empty' }, dom ? `No backups of ${dom} in this bucket.` : 'The bucket holds no backups yet.'));
  }

  function contentsRow(name, x) {
    const locked = x.retain_until && Date.parse(x.retain_until) > Date.now();
    return h('tr', { 'data-remote-backup': x.id },
      h('td', { 'data-label': 'Domain' }, h('span', null, x.domain_name ?? x.domain_uuid,
        h('div', { class: 'muted small mono' }, `${shortId(x.id)} · from ${x.host}`))),
      h('td', { 'data-label': 'Started', title: fmtTime(x.started_at) }, fmtAge(x.started_at)),
      h('td', { 'data-label': 'Type' }, h('span', null, x.type, x.encryption !== 'none' ? [' ', badge('encrypted', 'ok', x.encryption)] : null)),
      h('td', { 'data-label': 'Size in bucket', class: 'num' }, fmtBytes(x.object_bytes)),
      h('td', { 'data-label': 'Copied', title: fmtTime(x.copied_at) }, fmtAge(x.copied_at)),
      h('td', { 'data-label': 'Locked until' }, x.retain_until ? h('span', null, locked ? badge('locked', 'warn') : null, ` ${fmtTime(x.retain_until)}`) : '—'),
      h('td', { 'data-label': 'Actions', class: 'actions-cell' },
        h('button', { type: 'button', class: 'btn small', onclick: () => restoreDialog(name, x), 'aria-label': `Restore backup ${shortId(x.id)} from ${name}` }, 'Restore…'),
        h('button', { type: 'button', class: 'btn small danger', onclick: () => removeBackup(name, x), 'aria-label': `Delete backup ${shortId(x.id)} from ${name}` }, 'Delete')));
  }

  async function restoreDialog(name, x) {
    const target = field('target_dir', 'Target folder', { required: true, placeholder: '/var/lib/virtvault/vault/restore/…', autocomplete: 'off', spellcheck: 'false' },
      'An absolute folder on this server inside a restore root (--restore-roots; default <vault>/restore). Existing files are never replaced.');
    const fmtErr = h('p', { class: 'field-error', 'data-error-for': 'format' });
    const r = await formDialog({
      title: `Restore backup ${shortId(x.id)} from ${name}`, submitLabel: 'Restore', id: 'remote-restore-dialog',
      body: [h('p', null, `Downloads the chain of backup ${shortId(x.id)} of ${x.domain_name ?? x.domain_uuid} (${x.type}, ${fmtTime(x.started_at)}) from the bucket and writes its disks as new files.`),
        target.nodes, radioGroup('format', 'Format', [['qcow2', 'qcow2'], ['raw', 'raw']], 'qcow2'), fmtErr, defineField()],
      submit: async (form) => {
        const f = new FormData(form);
        const req = withDefine({ target_dir: String(f.get('target_dir') ?? '').trim(), format: f.get('format') }, form);
        return withFieldErrors(form, () => api('POST', `/v1/remotes/${seg(name)}/backups/${seg(x.id)}/restore`, req));
      },
    });
    if (!r) return;
    const id = r.data?.id ?? jobIdFrom(r.location);
    const final = await follow(id, `Restoring ${shortId(x.id)} from ${name}`);
    if (final?.state !== 'succeeded') {
      replace(contentsMsg, problemView(final?.error ?? { title: 'The restore did not finish', detail: final?.state ?? 'the job could not be read' },
        { context: `Backup ${shortId(x.id)} was not restored from ${name}.` }));
      return;
    }
    const text = `Backup ${shortId(x.id)} restored from ${name}.`;
    replace(contentsMsg, restoreResultView('offsite-restore-result', text, final.result));
    announce(text);
  }

  /** A progress line for job id until it ends; resolves with the final job (or null). */
  function follow(id, label) {
    const bar = h('span', { style: 'width:0%' });
    const pctText = h('span', null, 'queued');
    const barBox = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0', 'aria-label': label }, bar);
    const box = h('div', { class: 'job', 'data-job': id }, h('div', { class: 'job-line' }, h('span', null, label), pctText), barBox);
    jobs.append(box);
    return followJob(id, (j) => {
      if (!j) return;
      const pct = percentOf(j);
      bar.style.width = `${pct ?? 0}%`;
      barBox.setAttribute('aria-valuenow', String(Math.round(pct ?? 0)));
      pctText.textContent = `${j.state}${pct === null ? '' : ` · ${Math.round(pct)}%`}`;
    }).then((final) => {
      box.classList.toggle('done', final?.state === 'succeeded');
      box.classList.toggle('failed', final?.state !== 'succeeded');
      if (final?.state === 'succeeded') setTimeout(() => box.remove(), 4000);
      return final;
    });
  }

  async function removeBackup(name, x) {
    const ok = await formDialog({
      title: `Delete backup ${shortId(x.id)} from ${name}?`, danger: true, focus: 'cancel', submitLabel: 'Delete', id: 'remote-backup-delete-dialog',
      body: h('p', null, `Removes its manifest and images from the bucket. Local backups are not touched. A locked copy, or one that a later copy stands on, is refused.`),
      submit: () => api('DELETE', `/v1/remotes/${seg(name)}/backups/${seg(x.id)}`),
    });
    if (!ok) return;
    const text = `Backup ${shortId(x.id)} deleted from ${name}.`;
    replace(contentsMsg, h('p', { class: 'notice', role: 'status' }, text));
    announce(text);
    listContents();
  }

  load();
  if (params.query?.get('remote')) showContents(params.query.get('remote'));
  return () => { gen++; cgen++; };
}

/** The add/edit dialog's options for formDialog: r is the remote to edit, or null for a new one. */
function remoteForm(r) {
  const f = {
    name: field('name', 'Name', { required: true, maxlength: '64', value: r?.name, readonly: r ? true : null, autocomplete: 'off', spellcheck: 'false' },
      r ? 'A remote keeps its name.' : 'Letters, digits, “.”, “_” and “-”.'),
    endpoint: field('endpoint', 'Endpoint', { required: true, value: r?.endpoint, placeholder: 'https://s3.example.com', autocomplete: 'off', spellcheck: 'false', inputmode: 'url' },
      'http[s]://host[:port] of the object store.'),
    region: field('region', 'Region', { value: r?.region ?? '', placeholder: 'us-east-1', autocomplete: 'off' }, 'The signing region; empty: us-east-1.'),
    bucket: field('bucket', 'Bucket', { required: true, value: r?.bucket, autocomplete: 'off', spellcheck: 'false' }),
    prefix: field('prefix', 'Prefix', { value: r?.prefix ?? '', autocomplete: 'off', spellcheck: 'false' }, 'Keys start with PREFIX/; empty: none.'),
    access_key: field('access_key', 'Access key', { required: true, value: r?.access_key, autocomplete: 'off', spellcheck: 'false' }),
    secret: field('secret', 'Secret key', { type: 'password', required: !r, autocomplete: 'new-password',
      placeholder: r ? 'stored; leave empty to keep it' : null },
    r ? 'Write-only: the stored secret is never shown. A new one replaces it.' : 'Write-only: kept in a file of the server’s own and never shown again.'),
    ca_file: field('ca_file', 'CA file', { value: r?.ca_file ?? '', autocomplete: 'off', spellcheck: 'false' }, 'Optional: a PEM file on the server of the CAs to trust for https.'),
    key_file: field('key_file', 'Encryption key file', { value: r?.key_file ?? '', autocomplete: 'off', spellcheck: 'false' },
      'Optional: a file on the server of 32 bytes (or 64 hex digits); copies are then encrypted with AES-256-GCM. Keep a copy of it elsewhere.'),
    lock_days: field('lock_days', 'Lock copies for (days)', { type: 'number', min: '0', max: '36500', step: '1', inputmode: 'numeric', value: String(r?.lock_days ?? 0) },
      '0: no lock. Otherwise S3 object lock (COMPLIANCE) for that many days; the bucket must have object lock.'),
  };
  const pathErr = h('p', { class: 'field-error', 'data-error-for': 'path_style' });
  const body = [
    Object.values(f).map((x) => x.nodes),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'path_style', checked: r ? r.path_style : true,
      'aria-describedby': `rf-path-hint-${++seq}` }), ' Path-style addressing'),
    h('p', { class: 'hint', id: `rf-path-hint-${seq}` }, 'On: objects at ENDPOINT/BUCKET/KEY (Ceph, MinIO); off: BUCKET.HOST/KEY (virtual hosts).'),
    pathErr,
  ];
  return {
    title: r ? `Edit remote ${r.name}` : 'New remote', body, id: 'remote-dialog', submitLabel: r ? 'Save' : 'Add remote',
    submit: async (form) => {
      const v = (k) => String(new FormData(form).get(k) ?? '').trim();
      const def = {
        endpoint: v('endpoint'), bucket: v('bucket'), prefix: v('prefix'), access_key: v('access_key'),
        path_style: form.elements.namedItem('path_style').checked,
      };
      // A change replaces the remote (its secret aside): a file left empty is none.
      if (v('ca_file')) def.ca_file = v('ca_file');
      if (v('key_file')) def.key_file = v('key_file');
      if (v('region')) def.region = v('region');
      const days = v('lock_days');
      // A number the API can check; anything else is sent as typed so that the API names it.
      def.lock_days = days === '' ? 0 : (/^-?[0-9]+$/.test(days) ? Number(days) : days);
      const secret = String(new FormData(form).get('secret') ?? '');
      if (secret || !r) def.secret = secret;
      return withFieldErrors(form, () => (r ? api('PUT', `/v1/remotes/${seg(r.name)}`, def)
        : api('POST', '/v1/remotes', { name: v('name'), ...def })));
    },
  };
}
