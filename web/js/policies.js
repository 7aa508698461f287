// The policies page (#/policies): every protection policy with its schedule, next run, last run
// and how each of its domains stands (overdue badges); create and edit in a dialog that shows
// the schedule's next five runs as it is typed, and where copies go offsite and how long the
// bucket keeps them; enable, disable, run now, delete.
// Also what other pages need of policies: the list of them all, and the policy of a domain.

import { h, replace, badge, fmtTime, fmtAge, announce } from './dom.js';
import { api, seg, problemView } from './api.js';
import { formDialog, textField, selectField } from './dialog.js';
import { nextRuns, CronError } from './cron.js';
import { onEvent, jobOf, isFinal } from './events.js';
import { listRemotes } from './remotes.js';

const KEEPS = [
  ['keep_last', 'Last'], ['keep_hourly', 'Hourly'], ['keep_daily', 'Daily'],
  ['keep_weekly', 'Weekly'], ['keep_monthly', 'Monthly'], ['keep_yearly', 'Yearly'],
];
export { KEEPS };

/** Every policy, all pages of GET /v1/policies. */
export async function listPolicies(opts = {}) {
  const out = [];
  let token = null;
  do {
    const q = token ? `?limit=500&page_token=${encodeURIComponent(token)}` : '?limit=500';
    const { data } = await api('GET', `/v1/policies${q}`, undefined, opts);
    out.push(...(data.items ?? []));
    token = data.next_page_token ?? null;
  } while (token);
  return out;
}

/** The policy and member of policies that name domain, or null. */
export function memberOf(policies, domain) {
  for (const p of policies) {
    const m = (p.members ?? []).find((x) => x.domain === domain);
    if (m) return { policy: p, member: m };
  }
  return null;
}

/** A schedule as text: the cron expression, or "every N s". */
export function scheduleText(s) {
  if (s && typeof s === 'object') return `every ${s.interval_seconds} s`;
  return String(s ?? '—');
}

/** A run's result as a badge with its time ("succeeded 5 min ago"), or "never". */
export function runView(run) {
  if (!run || !run.started_at) return h('span', { class: 'muted' }, 'never');
  const tone = {
    running: 'info', succeeded: 'ok', failed: 'bad', error: 'bad', copy_failed: 'bad',
    cancelled: 'warn', busy: 'warn', unavailable: 'warn', remote_prune_failed: 'warn',
  }[run.result] ?? 'muted';
  return h('span', { title: fmtTime(run.started_at) }, badge(run.result ?? '—', tone, run.detail ?? ''),
    ` ${fmtAge(run.started_at)}`, run.catch_up ? h('span', { class: 'muted small' }, ' (catch-up)') : null);
}

/** The body of PUT /v1/policies/NAME for p as it is, with changes. */
export function definitionOf(p, changes = {}) {
  const backup = { type: p.backup?.type ?? 'auto', mode: p.backup?.mode ?? 'push' };
  if (p.backup?.disks) backup.disks = p.backup.disks;
  if (p.backup?.bandwidth) backup.bandwidth = p.backup.bandwidth;
  if (p.backup?.target) backup.target = p.backup.target;
  return { name: p.name, domains: p.domains, schedule: p.schedule, backup, retention: p.retention ?? {},
    verify_after_days: p.verify_after_days ?? null, enabled: p.enabled,
    copy_to: p.copy_to ?? null, remote_retention: p.remote_retention ?? {}, ...changes };
}

export function policiesView(main, params, { signal }) {
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading policies…');
  const newBtn = h('button', { type: 'button', class: 'btn primary', onclick: () => editDialog(null) }, 'New policy');
  const msg = h('div', { 'aria-live': 'polite' });
  const slot = h('div');
  replace(main,
    h('h1', { tabindex: '-1' }, 'Policies'),
    h('div', { class: 'toolbar' },
      newBtn,
      h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'btn', onclick: () => load() }, 'Refresh')),
    status, msg, slot);
  document.title = 'Policies · virtvault';

  let gen = 0;
  let polling = 0;
  let focusNext = null; // the data-key to focus after the next redraw
  async function load() {
    const my = ++gen;
    let items;
    try {
      items = await listPolicies({ signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(slot, problemView(e, { context: 'The policies could not be listed.' }));
      status.textContent = '';
      return;
    }
    if (my !== gen) return;
    // A redraw keeps the keyboard where it was: on the same control of the same policy.
    const focused = slot.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    status.textContent = items.length ? `${items.length} ${items.length === 1 ? 'policy' : 'policies'}` : '';
    replace(slot, items.length ? h('table', { class: 'grid', id: 'policies-table' },
      h('caption', { class: 'visually-hidden' }, 'Protection policies'),
      h('thead', null, h('tr', null, ['Name', 'Domains', 'Schedule', 'Next run', 'Last run', 'State', 'Actions']
        .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, items.map(row)))
      : h('p', { class: 'empty' }, 'No policies yet. “New policy” backs domains up on a schedule.'));
    if (focusNext || focused) {
      const key = focusNext ?? focused;
      focusNext = null;
      (slot.querySelector(`[data-key="${CSS.escape(key)}"]`) ?? (main.contains(document.activeElement) ? null : newBtn))?.focus();
    }
    return items;
  }

  function row(p) {
    const members = p.members ?? [];
    return h('tr', { 'data-policy': p.name },
      h('th', { scope: 'row', 'data-label': 'Name' }, p.name),
      h('td', { 'data-label': 'Domains' }, h('span', null,
        h('span', { class: 'mono' }, (p.domains ?? []).join(', ')),
        members.length ? h('ul', { class: 'members small' }, members.map((m) => h('li', { 'data-member': m.domain },
          h('a', { href: `#/d/${encodeURIComponent(m.domain)}/backups` }, m.domain), ' ',
          m.overdue ? badge('overdue', 'bad', 'No successful backup within twice the schedule’s period') : null,
          m.last_success ? h('span', { class: 'muted', title: fmtTime(m.last_success) }, ` last success ${fmtAge(m.last_success)}`) : null)))
          : h('div', { class: 'muted small' }, 'no domain matches yet'))),
      h('td', { 'data-label': 'Schedule', class: 'mono' }, scheduleText(p.schedule)),
      h('td', { 'data-label': 'Next run', title: fmtTime(p.next_run) }, p.enabled ? fmtTime(p.next_run) : '—'),
      h('td', { 'data-label': 'Last run' }, runView(p.last_run)),
      h('td', { 'data-label': 'State' }, h('span', null,
        p.enabled ? badge('enabled', 'ok', 'The scheduler runs it') : badge('disabled', 'muted', 'The scheduler leaves it'),
        p.overdue ? [' ', badge('overdue', 'bad', 'A domain has no successful backup within twice the period')] : null)),
      h('td', { 'data-label': 'Actions', class: 'actions-cell' },
        h('button', { type: 'button', class: 'btn small', onclick: () => editDialog(p), 'aria-label': `Edit policy ${p.name}`,
          dataset: { key: `${p.name}/edit` } }, 'Edit…'),
        h('button', { type: 'button', class: 'btn small', onclick: () => setEnabled(p, !p.enabled), dataset: { key: `${p.name}/toggle` },
          'aria-label': `${p.enabled ? 'Disable' : 'Enable'} policy ${p.name}` }, p.enabled ? 'Disable' : 'Enable'),
        h('button', { type: 'button', class: 'btn small', onclick: () => runNow(p), disabled: !p.enabled,
          dataset: { key: `${p.name}/run` }, 'aria-label': `Run policy ${p.name} now` }, 'Run now'),
        h('button', { type: 'button', class: 'btn small danger', onclick: () => remove(p), dataset: { key: `${p.name}/delete` },
          'aria-label': `Delete policy ${p.name}` }, 'Delete')));
  }

  async function setEnabled(p, enabled) {
    focusNext = `${p.name}/toggle`;
    try {
      await api('PUT', `/v1/policies/${seg(p.name)}`, definitionOf(p, { enabled }));
      const text = `Policy ${p.name} ${enabled ? 'enabled' : 'disabled'}.`;
      replace(msg, h('p', { class: 'notice', role: 'status' }, text));
      announce(text);
    } catch (e) {
      replace(msg, problemView(e, { context: `Policy ${p.name} could not be ${enabled ? 'enabled' : 'disabled'}.` }));
    }
    load();
  }

  async function runNow(p) {
    const before = new Map((p.members ?? []).map((m) => [m.domain, m.last_run?.started_at ?? null]));
    try {
      await api('POST', `/v1/policies/${seg(p.name)}:run`);
    } catch (e) {
      replace(msg, problemView(e, { context: `Policy ${p.name} could not be run.` }));
      return;
    }
    replace(msg, h('p', { class: 'notice', role: 'status', id: 'run-status' }, `Policy ${p.name}: runs asked for.`));
    announce(`Policy ${p.name}: runs asked for.`);
    // The scheduler starts the runs within a moment: shows the jobs once they have started.
    const my = ++polling;
    const deadline = Date.now() + 60000;
    while (my === polling && !signal.aborted && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      const items = await load();
      const now = items?.find((x) => x.name === p.name);
      const started = (now?.members ?? []).filter((m) => m.last_run?.started_at && m.last_run.started_at !== before.get(m.domain));
      if (started.length) {
        replace(msg, h('div', { class: 'notice', role: 'status', id: 'run-status' }, `Policy ${p.name} started: `,
          started.map((m, i) => [i ? ', ' : '', `${m.domain} (${m.last_run.result}`,
            m.last_run.job_id ? [', job ', h('span', { class: 'mono', 'data-job-id': m.last_run.job_id }, m.last_run.job_id)] : null, ')'])));
        break;
      }
    }
  }

  async function remove(p) {
    const r = await formDialog({
      title: `Delete policy ${p.name}?`, danger: true, focus: 'cancel', submitLabel: 'Delete',
      body: h('p', null, 'Its run records go; backups it took stay, and jobs it started go on.'),
      submit: () => api('DELETE', `/v1/policies/${seg(p.name)}`),
    });
    if (!r) return;
    announce(`Policy ${p.name} deleted.`);
    focusNext = 'none';
    load();
  }

  async function editDialog(p) {
    const r = await formDialog(policyForm(p));
    if (!r) return;
    const text = `Policy ${r.data?.name ?? p?.name} ${p ? 'saved' : 'created'}.`;
    replace(msg, h('p', { class: 'notice', role: 'status' }, text));
    announce(text);
    load();
  }

  // A job that ends may be a policy's run: the list is read again, at most every 2 s.
  let pending = 0;
  const off = onEvent(({ data }) => {
    const job = jobOf(data);
    if (!job || !isFinal(job) || pending) return;
    pending = setTimeout(() => { pending = 0; load(); }, 2000);
  });

  load();
  return () => { polling++; off(); clearTimeout(pending); };
}

/** The create/edit dialog's options for formDialog: p is the policy to edit, or null for a new one. */
/**
 * The retention inputs of a policy's form (named PREFIX + keep_*, each labelled, and with
 * ariaPrefix in its accessible name when given), filled from values.
 */
function keepsFieldset(legend, values, prefix, ariaPrefix) {
  return h('fieldset', { class: 'keeps' }, h('legend', null, legend),
    KEEPS.map(([k, l]) => h('label', { class: 'keep' }, h('span', null, l),
      h('input', { type: 'number', name: `${prefix}${k}`, min: '0', max: '4294967295', step: '1', inputmode: 'numeric',
        value: values[k] ? String(values[k]) : '', 'aria-label': ariaPrefix ? `${ariaPrefix}: ${l}` : null }))));
}

/** The retention object of the form's PREFIX + keep_* inputs: the ones filled in. */
function keepsOf(f, prefix) {
  const out = {};
  for (const [k] of KEEPS) if (f.get(`${prefix}${k}`) !== '' && f.get(`${prefix}${k}`) !== null) out[k] = Number(f.get(`${prefix}${k}`));
  return out;
}

function policyForm(p) {
  const interval = p && typeof p.schedule === 'object';
  const nameF = textField('name', 'Name', { required: true, maxlength: '64', pattern: '[A-Za-z0-9_\\-][A-Za-z0-9._\\-]{0,63}',
    value: p?.name, readonly: p ? true : null, autocomplete: 'off' }, p ? 'A policy keeps its name.' : 'Letters, digits, “.”, “_” and “-”.');
  const domainsF = textField('domains', 'Domains', { required: true, value: (p?.domains ?? []).join(', '), autocomplete: 'off' },
    'Names and glob patterns (web-*), separated by commas or spaces.');
  const kind = h('select', { id: 'policy-schedule-kind', name: 'schedule_kind' },
    h('option', { value: 'cron', selected: !interval }, 'Cron expression (UTC)'),
    h('option', { value: 'interval', selected: interval }, 'Every N seconds'));
  const sched = h('input', { type: 'text', id: 'policy-schedule', name: 'schedule', autocomplete: 'off', spellcheck: 'false',
    class: 'mono', value: interval ? String(p.schedule.interval_seconds) : (p?.schedule ?? '@daily'),
    'aria-describedby': 'policy-schedule-hint policy-schedule-error' });
  const hint = h('p', { class: 'hint', id: 'policy-schedule-hint' });
  const error = h('p', { class: 'field-error', id: 'policy-schedule-error', role: 'alert' });
  const runs = h('ol', { class: 'next-runs mono small', id: 'next-runs', 'aria-label': 'Next five runs (UTC)' });

  const show = () => {
    const isInterval = kind.value === 'interval';
    hint.textContent = isInterval
      ? 'Seconds between runs, counted from the last run’s start; the first run comes at once.'
      : 'minute hour day-of-month month day-of-week, in UTC (e.g. 0 3 * * * or 30 2 * * MON-FRI), or @hourly, @daily, @weekly, @monthly, @yearly.';
    let times = [];
    let problem = '';
    try {
      const v = sched.value.trim();
      if (isInterval && !/^[0-9]+$/.test(v)) throw new CronError('interval_seconds must be a whole number from 1 to 31622400');
      times = nextRuns(isInterval ? { interval_seconds: Number(v) } : v, 5);
    } catch (e) {
      if (!(e instanceof CronError)) throw e;
      problem = `Schedule: ${e.message}`;
    }
    error.textContent = problem;
    sched.setCustomValidity(problem);
    sched.setAttribute('aria-invalid', problem ? 'true' : 'false');
    replace(runs, times.map((t) => h('li', null, h('time', { datetime: new Date(t).toISOString() }, fmtTime(new Date(t).toISOString())))));
  };
  sched.addEventListener('input', show);
  kind.addEventListener('change', show);
  show();

  const ret = p?.retention ?? {};
  const rret = p?.remote_retention ?? {};
  // The remotes a copy may go to, offered as the field is typed (read while the dialog opens).
  const remotes = h('datalist', { id: 'policy-remotes' });
  listRemotes().then((items) => replace(remotes,
    items.map((x) => h('option', { value: x.name }, `${x.bucket}${x.prefix ? `/${x.prefix}` : ''}`)))).catch(() => {});
  const body = [
    nameF, domainsF,
    h('label', { for: 'policy-schedule-kind' }, 'Schedule kind'), kind,
    h('label', { for: 'policy-schedule' }, 'Schedule'), sched, hint, error,
    h('div', { class: 'next-runs-box' }, h('div', { class: 'small', id: 'next-runs-label' }, 'Next five runs (UTC)'), runs,
      h('p', { class: 'hint' }, 'Each domain runs a fixed offset after these times (up to 5 min), so that domains do not start at once.')),
    selectField('backup_type', 'Backup type', [['auto', 'Auto'], ['full', 'Full'], ['incremental', 'Incremental'],
      ['differential', 'Differential']], p?.backup?.type ?? 'auto'),
    selectField('backup_mode', 'Mode', [['push', 'Push'], ['pull', 'Pull']], p?.backup?.mode ?? 'push'),
    keepsFieldset('Retention: backups to keep per bucket (empty: all)', ret, ''),
    textField('verify_after_days', 'Verify kept backups again after (days)', { type: 'number', min: '0', step: 'any',
      value: p?.verify_after_days === null || p?.verify_after_days === undefined ? '' : String(p.verify_after_days) },
    'Empty: never; 0: once, right after each backup.'),
    textField('copy_to', 'Copy each backup to remote', { value: p?.copy_to ?? '', list: 'policy-remotes', autocomplete: 'off' },
      'A remote’s name: each backup is copied to its bucket after the local retention. Empty: no offsite copy.'), remotes,
    keepsFieldset('Remote retention: copies to keep in the bucket (empty: all)', rret, 'remote_', 'Remote retention'),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'enabled', checked: p ? p.enabled : true }), ' Enabled'),
  ];
  return {
    title: p ? `Edit policy ${p.name}` : 'New policy', body, id: 'policy-dialog', submitLabel: p ? 'Save' : 'Create policy',
    submit: async (form) => {
      const f = new FormData(form);
      const v = String(f.get('verify_after_days') ?? '').trim();
      const def = {
        name: String(f.get('name')).trim(),
        domains: String(f.get('domains')).split(/[\s,]+/).filter(Boolean),
        schedule: f.get('schedule_kind') === 'interval' ? { interval_seconds: Number(f.get('schedule')) } : String(f.get('schedule')).trim(),
        backup: { type: f.get('backup_type'), mode: f.get('backup_mode') },
        retention: keepsOf(f, ''),
        verify_after_days: v === '' ? null : Number(v),
        enabled: f.get('enabled') === 'on',
        copy_to: String(f.get('copy_to') ?? '').trim() || null,
        remote_retention: keepsOf(f, 'remote_'),
      };
      if (p) {
        const keep = definitionOf(p).backup;
        def.backup = { ...keep, ...def.backup };
        if (def.backup.mode !== 'pull') delete def.backup.target;
        return api('PUT', `/v1/policies/${seg(p.name)}`, def);
      }
      return api('POST', '/v1/policies', def);
    },
  };
}
