// The snapshots tab against sandbox QEMU domains: take snapshots and see them in the tree;
// revert after a confirmation that names what will be lost; delete with children.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, launchBrowser, newPage, shot, sandbox, uniqueName, apiJson } from './harness.mjs';

let b;
let d;
let dom;
before(async () => {
  b = await launchBrowser();
  await sandbox('up');
  dom = uniqueName('vvb-snap');
  await sandbox('domain-create', dom, '--size', '64M');
  d = await startDaemon({ uri: 'qemu:///system' });
});
after(async () => {
  await b?.close();
  await d?.stop();
  if (dom) await sandbox('domain-remove', dom).catch(() => {});
});

/** Takes a snapshot through the dialog; kind is 'full' or 'disk_only'. */
async function take(page, name, kind) {
  await page.getByRole('button', { name: 'Take snapshot' }).click();
  const dlg = page.getByRole('dialog', { name: /Take a snapshot/ });
  await dlg.waitFor();
  // Focus starts on the first field.
  assert.equal(await page.evaluate(() => document.activeElement.name), 'name');
  await page.keyboard.type(name);
  await dlg.locator(`input[name=kind][value=${kind}]`).check();
  await dlg.getByRole('button', { name: 'Take snapshot' }).click();
  await dlg.waitFor({ state: 'detached', timeout: 120000 });
  await page.locator(`li[data-snapshot="${name}"]`).waitFor({ timeout: 120000 });
  await page.locator('.result', { hasText: `Snapshot ${name} taken.` }).waitFor({ timeout: 120000 });
}

test('takes a snapshot and sees it in the tree, current and with its kind', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${dom}/snapshots`);
    await page.locator('.empty', { hasText: 'No snapshots yet' }).waitFor();
    await take(page, 'base', 'full');
    const node = page.locator('li[data-snapshot="base"] > .node');
    assert.match(await node.innerText(), /current/);
    assert.match(await node.innerText(), /full/);
    assert.match(await node.innerText(), /memory: internal/);
    // Focus came back to the button that opened the dialog.
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Take snapshot');

    await take(page, 'second', 'full');
    // Drawn as a tree: "second" is a child of "base", and now the current one.
    await page.locator('li[data-snapshot="base"] li[data-snapshot="second"]').waitFor();
    assert.match(await page.locator('li[data-snapshot="second"] > .node').innerText(), /current/);
    assert.doesNotMatch(await page.locator('li[data-snapshot="base"] > .node').innerText(), /current/);
    const api = await apiJson(d.url, 'GET', `/v1/domains/${dom}/snapshots/current`);
    assert.equal(api.data.name, 'second');
    await shot(page, 'snapshots-tree');
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('reverts to a snapshot after a confirmation naming what will be lost', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    // Data written after "second" is what a revert to "base" loses... along with all since base.
    const before = (await sandbox('checksum', dom, '1M', '64K')).trim();
    await sandbox('write', dom, '1M', '64K', '0xcd');
    assert.notEqual((await sandbox('checksum', dom, '1M', '64K')).trim(), before);

    await page.goto(`${d.url}/#/d/${dom}/snapshots`);
    await page.locator('li[data-snapshot="base"]').waitFor();
    await page.getByRole('button', { name: 'Revert to base' }).click();
    const dlg = page.getByRole('dialog', { name: 'Revert to “base”?' });
    await dlg.waitFor();
    const text = await dlg.innerText();
    assert.match(text, /This will be lost/);
    assert.match(text, /everything written to vda since snapshot “second”/);
    assert.match(text, new RegExp(`running guest’s memory and state: ${dom} is running now`));
    // A destructive confirmation starts on Cancel, so Enter does not revert.
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel');
    await shot(page, 'snapshots-revert-confirm');

    // Escape cancels: nothing changes.
    await page.keyboard.press('Escape');
    await dlg.waitFor({ state: 'detached' });
    assert.equal((await apiJson(d.url, 'GET', `/v1/domains/${dom}/snapshots/current`)).data.name, 'second');

    await page.getByRole('button', { name: 'Revert to base' }).click();
    await dlg.waitFor();
    await dlg.getByRole('button', { name: 'Revert to base' }).click();
    await page.locator('.result', { hasText: `${dom} reverted to snapshot base.` }).waitFor({ timeout: 120000 });
    await page.locator('li[data-snapshot="base"] > .node.current').waitFor();
    assert.equal((await apiJson(d.url, 'GET', `/v1/domains/${dom}/snapshots/current`)).data.name, 'base');
    // The guest's disk is back as it was when "base" was taken.
    assert.equal((await sandbox('checksum', dom, '1M', '64K')).trim(), before);
    await shot(page, 'snapshots-reverted');
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('deletes a snapshot with its children after naming them', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${dom}/snapshots`);
    await page.locator('li[data-snapshot="second"]').waitFor();
    await page.getByRole('button', { name: 'Delete base with its children' }).click();
    const dlg = page.getByRole('dialog', { name: 'Delete “base” with children?' });
    await dlg.waitFor();
    assert.match(await dlg.innerText(), /base” and its 1 descendant:\s*base\s*second/);
    await dlg.getByRole('button', { name: 'Delete 2 snapshots' }).click();
    await page.locator('.empty', { hasText: 'No snapshots yet' }).waitFor({ timeout: 60000 });
    assert.deepEqual((await apiJson(d.url, 'GET', `/v1/domains/${dom}/snapshots`)).data.items, []);
    await shot(page, 'snapshots-deleted');
  } finally {
    await page.context().close();
  }
});
