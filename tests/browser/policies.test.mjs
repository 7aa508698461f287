// Policies in the UI: one created through the form (the next five runs shown as the schedule is
// typed, checked against times computed here), disabled and enabled, run now (real backups of
// a sandbox QEMU domain); the domain's protection line; the retention simulator on those real
// backups; and an overdue domain (a policy on the test driver, whose backups cannot start)
// shown by the metric, the policies page and the domain page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, launchBrowser, newPage, shot, sandbox, uniqueName, apiJson } from './harness.mjs';

let b;
let d;
let dom;
const policy = uniqueName('nightly');
before(async () => {
  b = await launchBrowser();
  await sandbox('up');
  dom = uniqueName('vvb-pol');
  await sandbox('domain-create', dom, '--size', '64M');
  await sandbox('write', dom, '0', '4M', 'random');
  d = await startDaemon({ uri: 'qemu:///system' });
});
after(async () => {
  await b?.close();
  await d?.stop();
  if (dom) await sandbox('domain-remove', dom).catch(() => {});
});

/** "2026-12-07 03:00:00 UTC", as the UI writes a time. */
const utc = (ms) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');

/** The next five 03:00 UTC after now: what `0 3 * * *` means, computed without the UI's code. */
function nextFiveAtThree(now) {
  const day = new Date(now);
  let t = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 3, 0, 0);
  if (t <= now) t += 86400000;
  return Array.from({ length: 5 }, (_, i) => utc(t + i * 86400000));
}

/** Resolves once fn() (async) returns something truthy; fails after ms. */
async function until(fn, what, ms = 120000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const jobDone = (id) => until(async () => {
  const j = (await apiJson(d.url, 'GET', `/v1/jobs/${id}`)).data;
  return ['succeeded', 'failed', 'cancelled'].includes(j?.state) ? j : null;
}, `job ${id}`);

test('a policy is created through the form, its next five runs shown as the schedule is typed', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/`);
    await page.getByRole('link', { name: 'Policies' }).click();
    await page.locator('.empty', { hasText: 'No policies yet' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Policies');

    await page.getByRole('button', { name: 'New policy' }).click();
    const dlg = page.getByRole('dialog', { name: 'New policy' });
    await dlg.waitFor();
    await dlg.getByLabel('Name', { exact: true }).fill(policy);
    await dlg.getByLabel('Domains').fill(dom);
    const sched = dlg.getByLabel('Schedule', { exact: true });
    const error = dlg.locator('#policy-schedule-error');
    const runs = dlg.locator('#next-runs li');

    // Typed a key at a time: incomplete, the field says why and lists no runs.
    await sched.fill('');
    await sched.pressSequentially('0 3 * *');
    assert.equal(await error.innerText(), 'Schedule: must have 5 fields: minute hour day-of-month month day-of-week');
    assert.equal(await sched.getAttribute('aria-invalid'), 'true');
    assert.equal(await runs.count(), 0);
    await sched.pressSequentially(' *');
    const now = Date.now();
    assert.equal(await error.innerText(), '');
    assert.equal(await sched.getAttribute('aria-invalid'), 'false');
    assert.deepEqual(await runs.allInnerTexts(), nextFiveAtThree(now));

    // A schedule that never fires is refused before it is sent; and one with names and ranges.
    await sched.fill('0 0 30 2 *');
    assert.match(await error.innerText(), /never fires/);
    await dlg.getByRole('button', { name: 'Create policy' }).click();
    assert.equal(await dlg.isVisible(), true);
    await sched.fill('30 2 * * mon-fri');
    const weekdays = (await runs.allInnerTexts()).map((t) => new Date(t.replace(' UTC', 'Z').replace(' ', 'T')));
    assert.equal(weekdays.length, 5);
    for (const w of weekdays) {
      assert.ok(w.getUTCDay() >= 1 && w.getUTCDay() <= 5, String(w));
      assert.equal(w.getUTCHours() * 60 + w.getUTCMinutes(), 150);
    }
    await sched.fill('0 3 * * *');
    await shot(page, 'policies-form');
    await dlg.getByRole('button', { name: 'Create policy' }).click();
    await dlg.waitFor({ state: 'detached' });

    const row = page.locator(`tr[data-policy="${policy}"]`);
    await row.waitFor();
    const cells = await row.locator('td').allInnerTexts();
    assert.match(cells[0], new RegExp(dom));
    assert.equal(cells[1], '0 3 * * *');
    assert.match(cells[4], /enabled/);
    await row.locator(`li[data-member="${dom}"]`).waitFor();
    const p = (await apiJson(d.url, 'GET', `/v1/policies/${policy}`)).data;
    assert.equal(p.schedule, '0 3 * * *');
    assert.deepEqual(p.domains, [dom]);
    assert.equal(p.enabled, true);
    assert.equal(p.backup.type, 'auto');
    // The API's next run is the first of the five, moved by the domain's fixed offset (< 5 min).
    const first = Date.parse(nextFiveAtThree(now)[0].replace(' UTC', 'Z').replace(' ', 'T'));
    const off = Date.parse(p.next_run) - first;
    assert.ok(off >= 0 && off < 300000, `next_run ${p.next_run}`);
    assert.match(cells[2], new RegExp(utc(Date.parse(p.next_run)).slice(0, 16)));
    await shot(page, 'policies-list');
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('a policy is disabled and enabled again, and run now starts its backup', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/policies`);
    const row = page.locator(`tr[data-policy="${policy}"]`);
    await row.waitFor();
    await row.getByRole('button', { name: `Disable policy ${policy}` }).click();
    await row.getByRole('button', { name: `Enable policy ${policy}` }).waitFor();
    assert.match(await row.locator('td').nth(4).innerText(), /disabled/);
    assert.equal((await apiJson(d.url, 'GET', `/v1/policies/${policy}`)).data.enabled, false);
    assert.equal(await row.getByRole('button', { name: `Run policy ${policy} now` }).isDisabled(), true);
    // The list was drawn again; the keyboard is still on the button, which now enables.
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), `Enable policy ${policy}`);
    await row.getByRole('button', { name: `Enable policy ${policy}` }).click();
    await row.getByRole('button', { name: `Disable policy ${policy}` }).waitFor();
    assert.equal((await apiJson(d.url, 'GET', `/v1/policies/${policy}`)).data.enabled, true);

    // Run now, twice: the first backup of the chain (auto: full), then an incremental.
    const jobs = [];
    for (let i = 0; i < 2; i++) {
      if (i) await sandbox('write', dom, '8M', '1M', '0xab');
      await row.getByRole('button', { name: `Run policy ${policy} now` }).click();
      const idEl = page.locator('#run-status [data-job-id]');
      await idEl.waitFor({ timeout: 60000 });
      const id = await idEl.innerText();
      assert.ok(!jobs.includes(id));
      jobs.push(id);
      assert.equal((await jobDone(id)).state, 'succeeded');
      await page.reload();
      await row.waitFor();
    }
    const items = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/backups`)).data.items;
    assert.deepEqual(items.map((x) => x.type).sort(), ['full', 'incremental']);
    await until(async () => /succeeded/.test(await row.locator('td').nth(3).innerText()), 'the last run on the page');
    await shot(page, 'policies-run');
  } finally {
    await page.context().close();
  }
});

test('the domain page shows its protection: policy, last success, next run', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${dom}/backups`);
    const line = page.locator('#protection');
    await line.locator(`[data-policy="${policy}"]`).waitFor();
    const m = (await apiJson(d.url, 'GET', `/v1/policies/${policy}`)).data.members.find((x) => x.domain === dom);
    assert.ok(m.last_success);
    assert.notEqual(await line.locator('[data-field=last-success]').innerText(), 'never');
    assert.equal(await line.locator('[data-field=last-success]').getAttribute('title'), utc(Date.parse(m.last_success)));
    assert.equal(await line.locator('[data-field=next-run]').innerText(), utc(Date.parse(m.next_run)));
    assert.equal(await line.getByText('overdue').count(), 0);
    await shot(page, 'policies-protection');
  } finally {
    await page.context().close();
  }
});

test('the retention simulator draws which real backups are kept, removed and merged', async () => {
  // A second chain: a full backup taken directly; now: full A <- incremental A, full B.
  const r = await apiJson(d.url, 'POST', `/v1/domains/${dom}/backups`, { type: 'full' });
  assert.equal(r.status, 202);
  assert.equal((await jobDone(r.data.job_id)).state, 'succeeded');
  const items = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/backups`)).data.items;
  const fullB = items.find((x) => x.id === r.data.id);
  const incA = items.find((x) => x.type === 'incremental');
  const fullA = items.find((x) => x.id === incA.parent_id);
  assert.ok(fullA && fullA.type === 'full' && fullA.chain_id !== fullB.chain_id);

  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${dom}`);
    await page.getByRole('link', { name: 'Retention' }).click();
    const form = page.locator('#retention-form');
    await form.waitFor();
    await page.getByText(`Filled in from policy ${policy}.`).waitFor();
    const fate = async (id) => [await page.locator(`#retention-list li[data-backup="${id}"]`).getAttribute('data-fate'),
      await page.locator(`#retention-axis g[data-backup="${id}"]`).getAttribute('data-fate')];

    // The policy keeps everything: all three kept.
    await page.locator('#retention-summary', { hasText: '3 kept, 0 removed, 0 merged' }).waitFor();

    // Keep the last two: full B and incremental A; full A goes, merged into its incremental.
    await form.getByLabel('Last').fill('2');
    await form.getByRole('button', { name: 'Simulate' }).click();
    await page.locator('#retention-summary', { hasText: '2 kept, 0 removed, 1 merged' }).waitFor();
    const api2 = (await apiJson(d.url, 'POST', '/v1/retention:simulate',
      { retention: { keep_last: 2 }, times: [fullA, incA, fullB].map((x) => x.started_at) })).data;
    assert.deepEqual(api2.keep.sort(), [incA.started_at, fullB.started_at].sort());
    assert.deepEqual(await fate(fullB.id), ['kept', 'kept']);
    assert.deepEqual(await fate(incA.id), ['kept', 'kept']);
    assert.deepEqual(await fate(fullA.id), ['merged', 'merged']);
    assert.match(await page.locator(`#retention-list li[data-backup="${incA.id}"]`).innerText(),
      new RegExp(`takes a merge of ${fullA.id.slice(0, 8)}`));
    assert.equal(await page.locator('#retention-axis .ret-link-merge').count(), 1);
    // Left to right is oldest to newest.
    const xOf = async (id) => (await page.locator(`#retention-axis g[data-backup="${id}"]`).boundingBox()).x;
    const xs = [await xOf(fullA.id), await xOf(incA.id), await xOf(fullB.id)];
    assert.ok(xs[0] < xs[1] && xs[1] < xs[2], `marks at ${xs}`);
    await shot(page, 'policies-retention');

    // Keep one: only full B; chain A is removed outright.
    await form.getByLabel('Last').fill('1');
    await form.getByRole('button', { name: 'Simulate' }).click();
    await page.locator('#retention-summary', { hasText: '1 kept, 2 removed, 0 merged' }).waitFor();
    assert.deepEqual(await fate(fullB.id), ['kept', 'kept']);
    assert.deepEqual(await fate(incA.id), ['removed', 'removed']);
    assert.deepEqual(await fate(fullA.id), ['removed', 'removed']);

    // At phone width the axis shrinks with the page.
    await page.setViewportSize({ width: 360, height: 740 });
    await page.reload();
    await page.locator('#retention-axis').waitFor();
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(scroll <= width, `${scroll} px wide on a ${width} px screen`);
    await shot(page, 'policies-retention-phone');
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.reload();
    await page.locator('#retention-axis').waitFor();

    // A negative count is refused by the field itself; nothing is simulated.
    await form.getByLabel('Last').fill('1');
    await form.getByRole('button', { name: 'Simulate' }).click();
    await page.locator('#retention-summary', { hasText: '1 kept, 2 removed, 0 merged' }).waitFor();
    await form.getByLabel('Daily').fill('-1');
    await form.getByRole('button', { name: 'Simulate' }).click();
    assert.equal(await form.getByLabel('Daily').evaluate((el) => el.validity.rangeUnderflow), true);
    assert.match(await page.locator('#retention-summary').innerText(), /^1 kept, 2 removed/);
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('an overdue domain shows in the metric, on the policies page and on the domain page', async () => {
  // The test driver's domain cannot be backed up (501): a policy every second is overdue after two.
  const td = await startDaemon();
  const page = await newPage(b.browser, td.url);
  try {
    const c = await apiJson(td.url, 'POST', '/v1/policies',
      { name: 'late', domains: ['test'], schedule: { interval_seconds: 1 }, backup: { type: 'full' } });
    assert.equal(c.status, 201);
    await until(async () => {
      const text = await (await fetch(`${td.url}/metrics`)).text();
      return /^virtvault_domain_overdue\{domain="test",policy="late"\} 1$/m.test(text);
    }, 'the overdue metric', 30000);

    await page.goto(`${td.url}/#/policies`);
    const row = page.locator('tr[data-policy="late"]');
    await row.waitFor();
    await row.locator('li[data-member="test"] .badge', { hasText: 'overdue' }).waitFor();
    assert.match(await row.locator('td').nth(1).innerText(), /every 1 s/);
    await shot(page, 'policies-overdue');

    await row.getByRole('link', { name: 'test' }).click();
    const line = page.locator('#protection');
    await line.locator('[data-policy="late"]').waitFor();
    await line.locator('.badge', { hasText: 'overdue' }).waitFor();
    assert.equal(await line.locator('[data-field=last-success]').innerText(), 'never');
    await shot(page, 'policies-domain-overdue');

    // Phone width: nothing wider than the screen.
    await page.setViewportSize({ width: 360, height: 740 });
    for (const path of ['/#/policies', '/#/d/test/retention']) {
      await page.goto(`${td.url}${path}`);
      await page.locator('#policies-table, #retention-result .empty, #retention-result .problem').first().waitFor();
      const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      assert.ok(scroll <= width, `${path}: ${scroll} px wide on a ${width} px screen`);
    }
    // Every control of the page and the policy dialog has a name.
    await page.goto(`${td.url}/#/policies`);
    await row.waitFor();
    await row.getByRole('button', { name: 'Edit policy late' }).click();
    const dlg = page.getByRole('dialog', { name: 'Edit policy late' });
    await dlg.waitFor();
    assert.equal(await dlg.getByLabel('Schedule kind').inputValue(), 'interval');
    assert.equal(await dlg.locator('#next-runs li').count(), 5);
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, a[href], input, select')]
      .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || el.labels?.length))
      .map((el) => el.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
    await page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'detached' });
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
    await td.stop();
  }
});

test('a policy copies offsite: copy_to and remote retention set through the form, kept by enable and disable', async () => {
  const remote = uniqueName('offsite');
  const made = await apiJson(d.url, 'POST', '/v1/remotes', {
    name: remote, endpoint: 'http://127.0.0.1:9', bucket: 'bucket', access_key: 'ak', secret: 'sk',
  });
  assert.equal(made.status, 201, JSON.stringify(made.data));
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/policies`);
    const row = page.locator(`tr[data-policy="${policy}"]`);
    await row.waitFor();
    const dialog = page.locator('#policy-dialog');

    // A remote that does not exist: the service's answer names the field; nothing changes.
    await row.getByRole('button', { name: `Edit policy ${policy}` }).click();
    await dialog.getByLabel('Copy each backup to remote').fill('no-such-remote');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.getByText(/no-such-remote/).first().waitFor();
    assert.equal((await apiJson(d.url, 'GET', `/v1/policies/${policy}`)).data.copy_to, null);

    // The remote is offered as the field is typed; saved with a remote retention.
    const field = dialog.getByLabel('Copy each backup to remote');
    await until(async () => (await dialog.locator(`#policy-remotes option[value="${remote}"]`).count()) === 1, 'the remotes offered');
    await field.fill(remote);
    await dialog.getByLabel('Remote retention: Last').fill('3');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    let p = (await apiJson(d.url, 'GET', `/v1/policies/${policy}`)).data;
    assert.equal(p.copy_to, remote);
    assert.deepEqual(p.remote_retention, { keep_last: 3 });

    // Disabling and enabling keep them (the change sends the policy whole).
    await row.getByRole('button', { name: `Disable policy ${policy}` }).click();
    await row.getByRole('button', { name: `Enable policy ${policy}` }).waitFor();
    await row.getByRole('button', { name: `Enable policy ${policy}` }).click();
    await row.getByRole('button', { name: `Disable policy ${policy}` }).waitFor();
    p = (await apiJson(d.url, 'GET', `/v1/policies/${policy}`)).data;
    assert.equal(p.enabled, true);
    assert.equal(p.copy_to, remote);
    assert.deepEqual(p.remote_retention, { keep_last: 3 });

    // The form shows them again; emptied, the policy copies nowhere.
    await row.getByRole('button', { name: `Edit policy ${policy}` }).click();
    assert.equal(await dialog.getByLabel('Copy each backup to remote').inputValue(), remote);
    assert.equal(await dialog.getByLabel('Remote retention: Last').inputValue(), '3');
    await dialog.getByLabel('Copy each backup to remote').fill('');
    await dialog.getByLabel('Remote retention: Last').fill('');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    p = (await apiJson(d.url, 'GET', `/v1/policies/${policy}`)).data;
    assert.equal(p.copy_to, null);
    assert.deepEqual(p.remote_retention, {});
  } finally {
    await page.context().close();
    await apiJson(d.url, 'DELETE', `/v1/remotes/${remote}`);
  }
});
