// The remotes page against a real Ceph RADOS Gateway (scripts/objstore, started here) and a
// sandbox QEMU domain: a remote added through the form (a bad endpoint first: the API's
// detail next to the field), "Check" ok with the bucket's object lock, a backup copied from the
// backups tab with its copy completed, a wrong secret's check failing at its step, the bucket listed on the Remotes page, a restore from
// it whose disk holds the guest's bytes (qemu-img compare), and a locked copy's delete refused
// with its due date. Then a restore from the bucket with "Define a new domain named" filled in:
// the domain is there afterwards (the API and virsh), on the restored disk. Last, the backups
// tab reads a row's copies when it comes into view (the 31st from the top too), a few at a time.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { startDaemon, launchBrowser, newPage, shot, sandbox, uniqueName, apiJson, virsh, ROOT } from './harness.mjs';

const run = promisify(execFile);
const OBJSTORE = join(ROOT, 'scripts/objstore');

let b;
let d;
let dom;
let store; // {dir, endpoint, accessKey, secretKey}
let bucket;
let scratch;
const defined = []; // domains the tests define, undefined at the end

/** Starts a throw-away Ceph cluster with a RADOS Gateway; resolves with its endpoint and keys. */
async function objstoreUp() {
  const dir = join(mkdtempSync(join(tmpdir(), 'vv-browser-objstore-')), 's');
  const { stdout } = await run(OBJSTORE, ['up', dir], { timeout: 180000 });
  const env = Object.fromEntries(stdout.split(/\s+/).filter((l) => l.includes('=')).map((l) => l.split(/=(.*)/s).slice(0, 2)));
  return { dir, endpoint: env.OBJSTORE_ENDPOINT, accessKey: env.OBJSTORE_ACCESS_KEY, secretKey: env.OBJSTORE_SECRET_KEY };
}

/** Makes a bucket with object lock (and so versioning) with the gateway's keys: curl's own SigV4. */
async function makeBucket(s, name) {
  const sha = createHash('sha256').update('').digest('hex');
  const { stdout } = await run('curl', ['-s', '-g', '-X', 'PUT', '--aws-sigv4', 'aws:amz:us-east-1:s3',
    '--user', `${s.accessKey}:${s.secretKey}`, '-H', `x-amz-content-sha256: ${sha}`,
    '-H', 'x-amz-bucket-object-lock-enabled: true', '-o', '/dev/null', '-w', '%{http_code}',
    `${s.endpoint}/${name}`], { timeout: 60000 });
  assert.equal(stdout, '200', `PUT bucket ${name}`);
}

/** Waits for a job to end (GET /v1/jobs/ID); resolves with it. */
async function waitJob(id) {
  const deadline = Date.now() + 120000;
  for (;;) {
    const j = (await apiJson(d.url, 'GET', `/v1/jobs/${id}`)).data;
    if (['succeeded', 'failed', 'cancelled'].includes(j.state)) return j;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${j.state}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Adds remote `name` (no lock) over the test's bucket under its own prefix, through the API. */
async function addRemote(name) {
  const add = await apiJson(d.url, 'POST', '/v1/remotes', { name, endpoint: store.endpoint, bucket,
    prefix: `site/${name}`, access_key: store.accessKey, secret: store.secretKey });
  assert.equal(add.status, 201, JSON.stringify(add.data));
}

/** A backup of the test's domain through the API, waited for to succeed; returns the backup. */
async function backUp(type) {
  const r = await apiJson(d.url, 'POST', `/v1/domains/${dom}/backups`, { type });
  assert.equal(r.status, 202, JSON.stringify(r.data));
  const job = await waitJob(r.data.job_id ?? /\/v1\/jobs\/([^/]+)/.exec(r.location)[1]);
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  return r.data;
}

/** Copies backup `id` to `remote` through the API and waits for the copy to succeed. */
async function copyTo(id, remote) {
  const c = await apiJson(d.url, 'POST', `/v1/domains/${dom}/backups/${id}/copies`, { remote });
  assert.equal(c.status, 202, JSON.stringify(c.data));
  const copy = await waitJob(c.data.id ?? /\/v1\/jobs\/([^/]+)/.exec(c.location)[1]);
  assert.equal(copy.state, 'succeeded', JSON.stringify(copy));
}

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'vv-browser-remotes-'));
  dom = uniqueName('vvb-rem');
  // The gateway starts while the domain is made.
  const [s] = await Promise.all([
    objstoreUp(),
    (async () => {
      b = await launchBrowser();
      await sandbox('up');
      await sandbox('domain-create', dom, '--size', '16M');
      await sandbox('write', dom, '0', '3M', 'random');
      await sandbox('write', dom, '9M', '1M', '0xab');
      d = await startDaemon({ uri: 'qemu:///system' });
    })(),
  ]);
  store = s;
  bucket = `b-${randomBytes(6).toString('hex')}`;
  await makeBucket(store, bucket);
});
after(async () => {
  await b?.close();
  for (const name of defined) {
    await virsh('undefine', name, '--nvram').catch(() => virsh('undefine', name)).catch(() => {});
  }
  await d?.stop();
  if (dom) await sandbox('domain-remove', dom).catch(() => {});
  if (store) await run(OBJSTORE, ['down', store.dir]).catch(() => {});
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test('a remote added in the form, checked, a backup copied to it, restored from it, and a locked delete refused', async () => {
  const r = await apiJson(d.url, 'POST', `/v1/domains/${dom}/backups`, { type: 'full' });
  assert.equal(r.status, 202, JSON.stringify(r.data));
  const jobId = r.data.job_id ?? /\/v1\/jobs\/([^/]+)/.exec(r.location)[1];
  const backupJob = waitJob(jobId);

  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/`);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Remotes' }).click();
    await page.locator('.empty', { hasText: 'No remotes yet' }).waitFor();
    assert.equal(await page.locator('#nav-remotes').getAttribute('aria-current'), 'page');

    // The form, with every field; a bad endpoint first.
    await page.getByRole('button', { name: 'New remote' }).click();
    const dlg = page.getByRole('dialog', { name: 'New remote' });
    await dlg.waitFor();
    await dlg.getByLabel('Name').fill('off');
    await dlg.getByLabel('Endpoint').fill('ftp://127.0.0.1:1');
    await dlg.getByLabel('Region').fill('us-east-1');
    await dlg.getByLabel('Bucket', { exact: true }).fill(bucket);
    await dlg.getByLabel('Prefix').fill('site/a');
    await dlg.getByLabel('Access key').fill(store.accessKey);
    await dlg.getByLabel('Secret key').fill(store.secretKey);
    assert.equal(await dlg.getByLabel('Secret key').getAttribute('type'), 'password');
    await dlg.getByLabel('Lock copies for (days)').fill('1');
    await dlg.getByRole('button', { name: 'Add remote' }).click();
    const endpointError = dlg.locator('[data-error-for="endpoint"]');
    await endpointError.filter({ hasText: /\S/ }).waitFor();
    const expected = (await apiJson(d.url, 'POST', '/v1/remotes', { name: 'x', endpoint: 'ftp://127.0.0.1:1', bucket,
      access_key: 'a', secret: 's' })).data;
    assert.equal(expected.errors[0].pointer, '/endpoint');
    assert.equal(await endpointError.innerText(), `endpoint: ${expected.errors[0].detail}`);
    assert.equal(await dlg.getByLabel('Endpoint').getAttribute('aria-invalid'), 'true');
    // The error is read with the field, and the keyboard is there to fix it.
    assert.equal(await page.evaluate(() => document.activeElement.name), 'endpoint');
    const described = await dlg.getByLabel('Endpoint').getAttribute('aria-describedby');
    assert.ok(described.split(' ').includes(await endpointError.getAttribute('id')), described);
    await shot(page, 'remotes-bad-endpoint');
    await dlg.getByLabel('Endpoint').fill(store.endpoint);
    await dlg.getByRole('button', { name: 'Add remote' }).click();
    await dlg.waitFor({ state: 'detached' });
    const row = page.locator('tr[data-remote="off"]');
    await row.waitFor();
    const cells = await row.locator('td').allInnerTexts();
    assert.equal(cells[0], store.endpoint);
    assert.equal(cells[1], `${bucket}/site/a`);
    assert.equal(cells[3], '1');
    const stored = (await apiJson(d.url, 'GET', '/v1/remotes/off')).data;
    assert.equal(stored.secret_set, true);
    assert.equal(stored.prefix, 'site/a');
    assert.equal(stored.lock_days, 1);
    assert.ok(!(await page.content()).includes(store.secretKey), 'the secret is shown back');

    // Check: ok, and the bucket has versioning and object lock.
    await row.getByRole('button', { name: 'Check remote off' }).click();
    const check = page.locator('#check-result');
    await check.waitFor({ timeout: 30000 });
    assert.match(await check.locator('h3').innerText(), /ok/);
    assert.equal(await check.locator('[data-check=versioning]').innerText(), 'on');
    assert.equal(await check.locator('[data-check=object_lock]').innerText(), 'on');

    // A remote whose secret is wrong: the check names the step that failed and S3's error.
    const bad = await apiJson(d.url, 'POST', '/v1/remotes', { name: 'wrong', endpoint: store.endpoint, bucket,
      access_key: store.accessKey, secret: 'not-the-secret' });
    assert.equal(bad.status, 201);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.locator('tr[data-remote="wrong"]').getByRole('button', { name: 'Check remote wrong' }).click();
    await page.locator('#check-result[data-remote="wrong"]').waitFor({ timeout: 30000 });
    const failed = (await apiJson(d.url, 'POST', '/v1/remotes/wrong:check')).data;
    assert.equal(failed.ok, false);
    assert.equal(await page.locator('#check-result .failed-step').innerText(), failed.failed_step);
    assert.match(await page.locator('#check-result .check-detail').innerText(), /\S/);
    await shot(page, 'remotes-check-failed');
    await page.locator('tr[data-remote="wrong"]').getByRole('button', { name: 'Delete remote wrong' }).click();
    const rmdlg = page.getByRole('dialog', { name: 'Delete remote wrong?' });
    await rmdlg.getByRole('button', { name: 'Delete' }).click();
    await page.locator('tr[data-remote="wrong"]').waitFor({ state: 'detached' });
    assert.equal((await apiJson(d.url, 'GET', '/v1/remotes/wrong')).status, 404);

    // Edit keeps the secret when its field is left empty.
    await row.getByRole('button', { name: 'Edit remote off' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit remote off' });
    await edit.waitFor();
    assert.equal(await edit.getByLabel('Secret key').inputValue(), '');
    await edit.getByRole('button', { name: 'Save' }).click();
    await edit.waitFor({ state: 'detached' });
    await row.getByRole('button', { name: 'Check remote off' }).click();
    await page.locator('#check-result h3', { hasText: 'ok' }).waitFor();

    // Copy from the backups tab, followed to its end; the copy's state in the row.
    const job = await backupJob;
    assert.equal(job.state, 'succeeded', JSON.stringify(job));
    const backup = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/backups`)).data.items[0];
    await page.goto(`${d.url}/#/d/${dom}/backups`);
    const brow = page.locator(`tr[data-backup="${backup.id}"]`);
    await brow.getByRole('button', { name: /^Copy backup .* to a remote$/ }).click();
    const cdlg = page.getByRole('dialog', { name: /^Copy backup/ });
    await cdlg.waitFor();
    assert.equal(await cdlg.getByLabel('Remote').inputValue(), 'off');
    // A bandwidth that is not a number: the API's detail under the field, nothing started.
    await cdlg.getByLabel('Bandwidth limit (MiB/s)').fill('fast');
    await cdlg.getByRole('button', { name: 'Start copy' }).click();
    const bwError = cdlg.locator('[data-error-for="bandwidth"]');
    await bwError.filter({ hasText: /\S/ }).waitFor();
    assert.match(await bwError.innerText(), /^bandwidth: /);
    assert.deepEqual((await apiJson(d.url, 'GET', `/v1/domains/${dom}/backups/${backup.id}/copies`)).data.items, []);
    await cdlg.getByLabel('Bandwidth limit (MiB/s)').fill('');
    await cdlg.getByRole('button', { name: 'Start copy' }).click();
    await cdlg.waitFor({ state: 'detached' });
    await page.locator('#copy-result').waitFor({ timeout: 60000 });
    await brow.locator('li[data-copy="off"]', { hasText: 'completed' }).waitFor();
    await shot(page, 'remotes-copy-completed');

    // The Remotes page lists what the bucket holds; the domain filter narrows it.
    await page.getByRole('link', { name: 'Remotes' }).click();
    await row.getByRole('button', { name: 'Backups in remote off' }).click();
    const brow2 = page.locator(`tr[data-remote-backup="${backup.id}"]`);
    await brow2.waitFor({ timeout: 30000 });
    assert.match(await brow2.innerText(), new RegExp(dom));
    await page.getByLabel(/^Domain/).fill('no-such-domain');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator('#remote-contents .empty').waitFor();
    await page.getByLabel(/^Domain/).fill(dom);
    await page.getByRole('button', { name: 'Filter' }).click();
    await brow2.waitFor();

    // Restore from the bucket, followed to its end: the disk holds the guest's bytes.
    const target = join(d.dir, 'vault', 'restore', 'from-off');
    await brow2.getByRole('button', { name: /^Restore backup/ }).click();
    const rdlg = page.getByRole('dialog', { name: /^Restore backup .* from off$/ });
    await rdlg.waitFor();
    await rdlg.getByLabel('Target folder').fill(target);
    await rdlg.locator('input[name=format][value=raw]').check();
    await rdlg.getByRole('button', { name: 'Restore' }).click();
    await rdlg.waitFor({ state: 'detached' });
    const result = page.locator('#offsite-restore-result');
    await result.waitFor({ timeout: 60000 });
    const path = (await result.locator('dd').first().innerText()).trim();
    assert.ok(path.startsWith(target) && existsSync(path), path);
    const guest = join(scratch, 'guest.raw');
    await sandbox('read', dom, '0', '16M', guest);
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', path, guest], { timeout: 60000 });
    assert.match(cmp.stdout, /Images are identical/);
    await shot(page, 'remotes-restored');

    // The copy is locked for a day: its delete is refused, with the due date.
    const listed = (await apiJson(d.url, 'GET', '/v1/remotes/off/backups')).data.items;
    const due = listed[0].retain_until.slice(0, 10);
    await brow2.getByRole('button', { name: /^Delete backup/ }).click();
    const ddlg = page.getByRole('dialog', { name: /^Delete backup .* from off\?$/ });
    await ddlg.waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel');
    await ddlg.getByRole('button', { name: 'Delete' }).click();
    const problem = ddlg.locator('.problem');
    await problem.waitFor();
    const text = await problem.innerText();
    assert.match(text, /HTTP 409/);
    assert.match(text, /locked/);
    assert.ok(text.includes(due), text);
    await shot(page, 'remotes-locked-delete');
    await page.keyboard.press('Escape');
    await ddlg.waitFor({ state: 'detached' });
    assert.equal((await apiJson(d.url, 'GET', '/v1/remotes/off/backups')).data.items.length, 1);
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('a restore from the bucket with "Define a new domain named" filled in defines that domain', async () => {
  // A remote of its own (no lock) holding a copy of a new full backup, made through the API.
  await addRemote('def');
  const backup = await backUp('full');
  await copyTo(backup.id, 'def');

  const name = uniqueName('vvb-def');
  defined.push(name);
  assert.equal((await apiJson(d.url, 'GET', `/v1/domains/${name}`)).status, 404);

  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/remotes?remote=def`);
    const row = page.locator(`tr[data-remote-backup="${backup.id}"]`);
    await row.waitFor({ timeout: 30000 });
    await row.getByRole('button', { name: /^Restore backup/ }).click();
    const dlg = page.getByRole('dialog', { name: /^Restore backup .* from def$/ });
    await dlg.waitFor();
    const target = join(d.dir, 'vault', 'restore', 'defined');
    await dlg.getByLabel('Target folder').fill(target);
    await dlg.getByLabel('Define a new domain named').fill(name);
    await dlg.getByRole('button', { name: 'Restore' }).click();
    await dlg.waitFor({ state: 'detached' });
    const result = page.locator('#offsite-restore-result');
    await result.waitFor({ timeout: 60000 });
    const path = (await result.locator('dd').first().innerText()).trim();
    assert.ok(path.startsWith(target) && existsSync(path), path);
    // The result names the domain and links to it, as the local restore's does.
    const link = result.getByRole('link', { name, exact: true });
    assert.equal(await link.getAttribute('href'), `#/d/${encodeURIComponent(name)}`);
    await shot(page, 'remotes-restored-defined');

    // The domain is there, on the restored disk, and libvirt has it too.
    const got = await apiJson(d.url, 'GET', `/v1/domains/${name}`);
    assert.equal(got.status, 200, JSON.stringify(got.data));
    assert.equal(got.data.name, name);
    assert.notEqual(got.data.uuid, (await apiJson(d.url, 'GET', `/v1/domains/${dom}`)).data.uuid);
    assert.ok(got.data.disks.some((x) => x.source === path), JSON.stringify(got.data.disks));
    assert.match(await virsh('domstate', name), /shut off/);

    // Its link opens the domain's page.
    await link.click();
    await page.locator('h1', { hasText: name }).waitFor();
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('the backups tab reads the copies of a backup 31st from the top when its row comes into view, three requests at a time', async () => {
  await addRemote('lazy');
  // A full backup copied to the remote, then 30 backups after it: its row is the 31st.
  const old = await backUp('full');
  await copyTo(old.id, 'lazy');
  for (let i = 0; i < 30; i++) await backUp('incremental');
  const items = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/backups`)).data.items;
  const completed = items.filter((x) => x.state === 'completed')
    .sort((x, y) => String(y.started_at).localeCompare(String(x.started_at)));
  const place = completed.findIndex((x) => x.id === old.id);
  assert.ok(place >= 30, `the copied backup is number ${place + 1} from the top`);

  const page = await newPage(b.browser, d.url);
  // The copies requests the page makes, and the most in flight at once.
  const asked = [];
  let inFlight = 0;
  let most = 0;
  const isCopies = (req) => req.method() === 'GET' && /\/backups\/[^/]+\/copies$/.test(new URL(req.url()).pathname);
  page.on('request', (req) => {
    if (!isCopies(req)) return;
    asked.push(new URL(req.url()).pathname);
    most = Math.max(most, ++inFlight);
  });
  const ended = (req) => { if (isCopies(req)) inFlight--; };
  page.on('requestfinished', ended);
  page.on('requestfailed', ended);
  try {
    const first = page.waitForResponse((res) => new URL(res.url()).pathname.endsWith(`/backups/${completed[0].id}/copies`), { timeout: 30000 });
    await page.goto(`${d.url}/#/d/${dom}/backups`);
    await first;
    const row = page.locator(`tr[data-backup="${old.id}"]`);
    await row.waitFor({ state: 'attached' });
    // Out of view, its copies are not read yet; nor are those of most rows.
    assert.ok(!asked.some((p) => p.endsWith(`/${old.id}/copies`)), 'read before it came into view');
    assert.ok(asked.length < completed.length, `${asked.length} of ${completed.length} read before any scrolling`);
    await row.scrollIntoViewIfNeeded();
    await row.locator('li[data-copy="lazy"]', { hasText: 'completed' }).waitFor({ timeout: 30000 });
    // Never more than three requests at a time.
    assert.ok(most >= 1 && most <= 3, `${most} copies requests in flight at once`);
    await shot(page, 'backups-copies-lazy', { fullPage: false });
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});
