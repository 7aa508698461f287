// Recovery from a backup row against a sandbox QEMU domain: "Run now" (an instant recovery
// followed in the page up to a domain independent of the vault, checked with virsh), and
// "Mount" (the URIs the API gives, an HTTP Range read of the mounted disk equal to the guest's
// bytes, then unmount).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, launchBrowser, newPage, shot, sandbox, uniqueName, apiJson, virsh } from './harness.mjs';

let b;
let d;
let dom;
let full;
const made = [];

async function waitJob(base, id, timeout = 120000) {
  const { data } = await apiJson(base, 'GET', `/v1/jobs/${id}?wait=${Math.round(timeout / 1000)}`);
  return data;
}

before(async () => {
  b = await launchBrowser();
  await sandbox('up');
  dom = uniqueName('vvb-rec');
  await sandbox('domain-create', dom, '--size', '64M');
  await sandbox('write', dom, '0', '4M', 'random');
  d = await startDaemon({ uri: 'qemu:///system' });
  const r = await apiJson(d.url, 'POST', `/v1/domains/${dom}/backups`, { type: 'full' });
  assert.equal(r.status, 202, JSON.stringify(r.data));
  const job = await waitJob(d.url, r.data.job_id);
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  full = r.data;
});
after(async () => {
  await b?.close();
  for (const name of made) {
    await virsh('destroy', name).catch(() => {});
    await virsh('undefine', name).catch(() => {});
  }
  await d?.stop();
  if (dom) await sandbox('domain-remove', dom).catch(() => {});
});

test('"Run now" starts a new domain from the vault and follows it to independence', async () => {
  const page = await newPage(b.browser, d.url);
  const name = uniqueName('vvb-ir');
  made.push(name);
  try {
    await page.goto(`${d.url}/#/d/${dom}/backups`);
    const row = page.locator(`tr[data-backup="${full.id}"]`);
    await row.waitFor();
    await row.getByRole('button', { name: /^Run backup .* now as a new domain/ }).click();
    const dlg = page.getByRole('dialog', { name: /^Run backup .* now$/ });
    await dlg.waitFor();
    // A name taken already: the dialog stays open with the API's 409.
    await dlg.getByLabel('Name of the new domain').fill(dom);
    await dlg.getByLabel('Target folder').fill(join(d.dir, 'vault', 'restore', 'ir'));
    await dlg.getByRole('button', { name: 'Run now' }).click();
    await dlg.locator('.problem .p-title').waitFor();
    assert.match(await dlg.locator('.problem').innerText(), /HTTP 409/);

    await dlg.getByLabel('Name of the new domain').fill(name);
    // 4 MiB/s: the move of the 64 MiB disk lasts long enough to leave the page and come back.
    await dlg.getByLabel('Copy bandwidth limit (MiB/s)').fill('4');
    assert.equal(await dlg.getByLabel('Start the domain now').isChecked(), true);
    await dlg.getByRole('button', { name: 'Run now' }).click();
    await dlg.waitFor({ state: 'detached' });

    const box = page.locator(`.recovery-job[data-recovery="${name}"]`);
    await box.waitFor();
    await box.locator('li.done[data-phase=running]').waitFor({ timeout: 60000 });
    // Shown running: libvirt says so too, and the page links to it.
    assert.equal((await virsh('domstate', name)).trim(), 'running');
    assert.equal(await box.getByRole('link', { name }).getAttribute('href'), `#/d/${name}`);
    assert.match(await box.locator('[data-field=running-after]').innerText(), /after \d/);
    await shot(page, 'recovery-running');

    // A page opened during the move finds the recovery and follows it on.
    await page.reload();
    await box.locator('li.done[data-phase=running]').waitFor({ timeout: 30000 });
    assert.equal(await box.locator('li.done[data-phase=independent]').count(), 0, 'the move ended too soon to test this');
    const moving = Number(await box.locator('[role=progressbar]').getAttribute('aria-valuenow'));
    assert.ok(moving < 100, `${moving}%`);

    await box.locator('li.done[data-phase=independent]').waitFor({ timeout: 180000 });
    await box.locator('[role=progressbar][aria-valuenow="100"]').waitFor();
    await box.locator('.result', { hasText: 'independent of the vault' }).waitFor();
    const jobId = await box.getAttribute('data-job');
    const job = (await apiJson(d.url, 'GET', `/v1/jobs/${jobId}`)).data;
    assert.equal(job.kind, 'instant_recovery');
    assert.equal(job.state, 'succeeded');
    assert.equal(job.result.phase, 'independent');
    assert.equal((await virsh('domstate', name)).trim(), 'running');
    // Its disk is the one in the target folder, with no vault file behind it.
    const xml = await virsh('dumpxml', name);
    assert.ok(xml.includes(job.result.disks[0].path), xml);
    assert.ok(!xml.includes('<backingStore type'), xml);
    await shot(page, 'recovery-independent');

    await box.getByRole('link', { name }).click();
    await page.locator('h1', { hasText: name }).waitFor();
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('"Mount" shows the mount\'s URIs, serves the disk over HTTP, and "Unmount" ends it', async () => {
  const page = await newPage(b.browser, d.url);
  const tmp = join(d.dir, 'guest-head.raw');
  try {
    await page.goto(`${d.url}/#/d/${dom}/backups`);
    const row = page.locator(`tr[data-backup="${full.id}"]`);
    await row.waitFor();
    await row.getByRole('button', { name: /^Mount backup/ }).click();
    const card = page.locator('#mounts [data-mount]');
    await card.waitFor();
    // Focus moves to the new mount's heading, for keyboard and screen reader users.
    assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'H4');

    const mounts = (await apiJson(d.url, 'GET', '/v1/mounts')).data.items;
    assert.equal(mounts.length, 1);
    const m = mounts[0];
    assert.equal(m.backup_id, full.id);
    assert.equal(await card.getAttribute('data-mount'), m.id);
    const disk = card.locator('[data-disk=vda]');
    const dd = (f) => disk.locator(`[data-field=${f}] code`).innerText();
    assert.equal(await dd('uri'), m.disks[0].uri);
    assert.match(m.disks[0].uri, /^nbd\+unix:/);
    assert.equal(await dd('socket'), m.disks[0].socket);
    assert.equal(await dd('data'), `${d.url}${m.disks[0].data}`);
    assert.equal(await dd('command'), `nbdcopy '${m.disks[0].uri}' vda.raw`);
    const extents = await dd('extents');
    await shot(page, 'recovery-mount');
    // At phone width the long URIs wrap: nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 812 });
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(scroll <= width, `${scroll} px wide on a ${width} px screen`);
    await shot(page, 'recovery-mount-phone');
    await page.setViewportSize({ width: 1280, height: 860 });

    // The data URL serves the point's bytes (the guest's, unchanged since the backup).
    const res = await fetch(await dd('data'), { headers: { Range: 'bytes=0-65535' } });
    assert.equal(res.status, 206);
    const got = Buffer.from(await res.arrayBuffer());
    await sandbox('read', dom, '0', '65536', tmp);
    assert.ok(got.equals(readFileSync(tmp)), 'the mounted disk differs from the guest');
    const ext = await fetch(extents);
    assert.equal(ext.status, 200);
    assert.ok((await ext.json()).items.length >= 1);

    // Keyboard: the Unmount button is reached and pressed with the keyboard.
    const unmount = card.getByRole('button', { name: /^Unmount backup/ });
    await unmount.focus();
    await page.keyboard.press('Enter');
    await card.waitFor({ state: 'detached' });
    assert.equal(await page.locator('#mounts').isHidden(), true);
    assert.deepEqual((await apiJson(d.url, 'GET', '/v1/mounts')).data.items, []);
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    rmSync(tmp, { force: true });
    await page.context().close();
  }
});
