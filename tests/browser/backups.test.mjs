// The backups tab against a sandbox QEMU domain: "Back up now" with live progress from
// /v1/events up to 100% and the row in the catalog; an incremental after guest writes; verify
// and restore with their results; and the test driver's 501 shown as the API states it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, launchBrowser, newPage, shot, sandbox, uniqueName, apiJson } from './harness.mjs';

let b;
let d;
let dom;
before(async () => {
  b = await launchBrowser();
  await sandbox('up');
  dom = uniqueName('vvb-bak');
  await sandbox('domain-create', dom, '--size', '64M');
  await sandbox('write', dom, '0', '4M', 'random');
  d = await startDaemon({ uri: 'qemu:///system' });
});
after(async () => {
  await b?.close();
  await d?.stop();
  if (dom) await sandbox('domain-remove', dom).catch(() => {});
});

/** Starts a backup through the dialog and waits for its bar to reach 100%; returns the percentages seen. */
async function backUp(page, type) {
  // Every value the progress bar takes, as the page shows it.
  await page.evaluate(() => {
    window.seenProgress = [];
    new MutationObserver((ms) => {
      for (const m of ms) {
        const el = m.target.closest?.('[role=progressbar]') ?? m.target.querySelector?.('[role=progressbar]');
        if (el) window.seenProgress.push(Number(el.getAttribute('aria-valuenow')));
      }
    }).observe(document.getElementById('backup-jobs'), { subtree: true, childList: true, attributes: true });
  });
  // The box of an earlier backup may still be there (finished boxes fade out): follow the new one.
  const before = await page.locator('#backup-jobs [data-job]').evaluateAll((els) => els.map((el) => el.dataset.job));
  await page.getByRole('button', { name: 'Back up now' }).click();
  const dlg = page.getByRole('dialog', { name: `Back up ${dom} now` });
  await dlg.waitFor();
  await dlg.locator(`input[name=type][value=${type}]`).check();
  await dlg.locator('input[name=mode][value=push]').check();
  await dlg.getByRole('button', { name: 'Start backup' }).click();
  await dlg.waitFor({ state: 'detached' });
  const id = await (await page.waitForFunction((old) => [...document.querySelectorAll('#backup-jobs [data-job]')]
    .map((el) => el.dataset.job).find((x) => !old.includes(x)), before)).jsonValue();
  const box = page.locator(`#backup-jobs [data-job="${id}"]`);
  await box.locator('[role=progressbar][aria-valuenow="100"]').waitFor({ timeout: 120000 });
  await box.filter({ hasText: 'succeeded · 100%' }).waitFor();
  return page.evaluate(() => window.seenProgress);
}

test('a backup shows live progress up to 100% and its row appears in the catalog', async (t) => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${dom}/backups`);
    await page.locator('.empty', { hasText: 'No backups of this domain yet' }).waitFor();
    // The event stream is open: progress is pushed, not only polled.
    await page.locator('#live.on').waitFor();

    const seen = await backUp(page, 'full');
    assert.equal(Math.max(...seen), 100);
    await shot(page, 'backups-progress');

    const list = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/backups`)).data.items;
    assert.equal(list.length, 1);
    const full = list[0];
    assert.equal(full.state, 'completed');
    const row = page.locator(`tr[data-backup="${full.id}"]`);
    await row.waitFor();
    const cells = await row.locator('td').allInnerTexts();
    assert.match(cells[1], /^full/);
    assert.equal(cells[2], 'push');
    assert.match(cells[4], /[KM]iB/);
    assert.match(cells[6], /completed/);

    // Guest writes, then "auto": an incremental of the same chain, smaller than the full.
    await sandbox('write', dom, '8M', '1M', '0xab');
    await backUp(page, 'auto');
    const items = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/backups`)).data.items;
    const inc = items.find((x) => x.id !== full.id);
    assert.equal(inc.type, 'incremental');
    assert.equal(inc.chain_id, full.chain_id);
    const incRow = page.locator(`tr[data-backup="${inc.id}"]`);
    await incRow.waitFor();
    assert.match((await incRow.locator('td').allInnerTexts())[1], /incremental/);
    // The chart has one bar per completed backup.
    await page.locator('svg.chart rect.bar-size').nth(1).waitFor();
    assert.equal(await page.locator('svg.chart rect.bar-size').count(), 2);
    await page.waitForTimeout(4500); // the finished bars fade out
    await shot(page, 'backups-catalog');
    // At phone width the table turns into cards, no wider than the screen.
    await page.setViewportSize({ width: 375, height: 812 });
    await page.reload();
    await incRow.waitFor();
    await page.locator('svg.chart').waitFor();
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(scroll <= width, `${scroll} px wide on a ${width} px screen`);
    await shot(page, 'backups-catalog-phone');
    await page.setViewportSize({ width: 1280, height: 860 });
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('verify and restore show their results', async (t) => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${dom}/backups`);
    const items = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/backups`)).data.items;
    assert.ok(items.length >= 1, 'the test before leaves backups');
    const newest = items[0];
    const row = page.locator(`tr[data-backup="${newest.id}"]`);
    await row.waitFor();

    await row.getByRole('button', { name: /^Verify/ }).click();
    const verified = page.locator('#verification-result');
    await verified.waitFor({ timeout: 120000 });
    assert.match(await verified.innerText(), /verified: \d+ files of \d+ backups match/);
    await row.getByText('verified').waitFor();

    const target = join(d.dir, 'vault', 'restore', 'browser');
    await row.getByRole('button', { name: /^Restore/ }).click();
    const dlg = page.getByRole('dialog', { name: /Restore backup/ });
    await dlg.waitFor();
    await dlg.getByLabel('Target folder').fill(target);
    await dlg.locator('input[name=format][value=raw]').check();
    await dlg.getByRole('button', { name: 'Restore' }).click();
    const restored = page.locator('#restore-result');
    await restored.waitFor({ timeout: 120000 });
    const text = await restored.innerText();
    assert.match(text, /vda/);
    const path = (await restored.locator('dd').first().innerText()).trim();
    assert.ok(path.startsWith(target), path);
    assert.ok(existsSync(path), `${path} exists`);
    await shot(page, 'backups-verify-restore');

    // An invalid target: the dialog stays open with the API's problem, as stated.
    await row.getByRole('button', { name: /^Restore/ }).click();
    await dlg.waitFor();
    await dlg.getByLabel('Target folder').fill('relative/path');
    await dlg.getByRole('button', { name: 'Restore' }).click();
    await dlg.locator('.problem .p-title').waitFor();
    assert.match(await dlg.locator('.problem').innerText(), /HTTP 400/);
    await shot(page, 'backups-restore-problem');
    await page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'detached' });
  } finally {
    await page.context().close();
  }
});

test('on the test driver, "Back up now" shows the 501 as the API states it', async (t) => {
  const td = await startDaemon();
  const page = await newPage(b.browser, td.url);
  try {
    await page.goto(`${td.url}/#/d/test/backups`);
    await page.locator('.notice', { hasText: 'Backups are not supported for this domain' }).waitFor();
    await page.getByRole('button', { name: 'Back up now' }).click();
    const dlg = page.getByRole('dialog', { name: 'Back up test now' });
    await dlg.waitFor();
    await dlg.getByRole('button', { name: 'Start backup' }).click();
    const problem = dlg.locator('.problem');
    await problem.waitFor();
    const expected = (await apiJson(td.url, 'POST', '/v1/domains/test/backups', {})).data;
    assert.equal(expected.status, 501);
    assert.equal(await problem.locator('.p-title').innerText(), expected.title);
    assert.equal(await problem.locator('.p-detail').innerText(), expected.detail);
    await shot(page, 'backups-unsupported');
  } finally {
    await page.context().close();
    await td.stop();
  }
});
