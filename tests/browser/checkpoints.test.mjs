// The checkpoints tab against a sandbox QEMU domain: create checkpoints and see the chain in
// order with the data changed since each; remove a bitmap behind libvirt's back, reconcile,
// and see the broken badge (here and in the domains list); delete one.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startDaemon, launchBrowser, newPage, shot, sandbox, uniqueName, apiJson, virsh } from './harness.mjs';

const run = promisify(execFile);
let b;
let d;
let dom;
before(async () => {
  b = await launchBrowser();
  await sandbox('up');
  dom = uniqueName('vvb-cp');
  await sandbox('domain-create', dom, '--size', '64M');
  d = await startDaemon({ uri: 'qemu:///system' });
});
after(async () => {
  await b?.close();
  await d?.stop();
  if (dom) await sandbox('domain-remove', dom).catch(() => {});
});

/** The flags of each persistent bitmap in the qcow2 image at path, read while it may be open. */
async function bitmapFlags(path) {
  const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', path]);
  const bitmaps = JSON.parse(stdout)['format-specific'].data.bitmaps ?? [];
  return Object.fromEntries(bitmaps.map((x) => [x.name, x.flags]));
}

/** Stops dom with SIGTERM only (destroy --graceful), again while QEMU is still closing. */
async function stopGracefully(name) {
  const deadline = Date.now() + 120000;
  for (;;) {
    const state = (await virsh('domstate', name)).trim();
    if (state === 'shut off') return;
    try {
      await virsh('destroy', '--graceful', name);
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
}

async function create(page, name) {
  await page.getByRole('button', { name: 'Create checkpoint' }).click();
  const dlg = page.getByRole('dialog', { name: `Create a checkpoint of ${dom}` });
  await dlg.waitFor();
  await dlg.getByLabel('Name').fill(name);
  await dlg.getByRole('button', { name: 'Create checkpoint' }).click();
  await dlg.waitFor({ state: 'detached', timeout: 60000 });
  await page.locator(`li[data-checkpoint="${name}"]`).waitFor();
}

test('creates checkpoints and shows the chain in order with the data changed since each', async (t) => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${dom}/checkpoints`);
    await page.locator('.empty', { hasText: 'No checkpoints yet' }).waitFor();
    await create(page, 'cp-a');
    await sandbox('write', dom, '2M', '1M', '0x5a');
    await create(page, 'cp-b');
    await sandbox('write', dom, '16M', '64K', '0x3c');
    await page.reload();
    await page.locator('li[data-checkpoint="cp-b"]').waitFor();

    const order = await page.locator('ol.chain > li').evaluateAll((lis) => lis.map((li) => li.dataset.checkpoint));
    assert.deepEqual(order, ['cp-a', 'cp-b']);
    for (const name of order) {
      const node = page.locator(`li[data-checkpoint="${name}"] .node`);
      assert.match(await node.innerText(), /\bok\b/);
    }
    // Data written since each: cp-a saw both writes (at least 1 MiB), cp-b only the second.
    const changed = (name) => page.locator(`li[data-checkpoint="${name}"] .changed`);
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll('.changed')];
      return cells.length === 2 && cells.every((e) => !e.textContent.includes('…'));
    });
    assert.match(await changed('cp-a').innerText(), /MiB/);
    assert.match(await changed('cp-b').innerText(), /KiB|MiB/);
    assert.match(await page.locator('li[data-checkpoint="cp-b"]').innerText(), /after cp-a/);
    await shot(page, 'checkpoints-chain');
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('a checkpoint whose bitmap was removed shows as broken after reconcile', async (t) => {
  const page = await newPage(b.browser, d.url);
  try {
    const info = (await apiJson(d.url, 'GET', `/v1/domains/${dom}`)).data;
    const disk = info.disks.find((x) => x.target === 'vda').source;
    // QEMU writes the persistent bitmaps into the image only as it closes it: those made in
    // this run are not in the image before, and those it opened are marked in-use. A plain
    // destroy sends SIGKILL when QEMU is slow to exit on SIGTERM (a loaded machine), and then
    // cp-a is missing from the image too, which the service rightly calls broken. So the
    // domain is stopped with SIGTERM only, asked again until QEMU has closed the image.
    await stopGracefully(dom);
    const flags = await bitmapFlags(disk);
    assert.deepEqual(Object.keys(flags).sort(), ['cp-a', 'cp-b'], 'QEMU stored both bitmaps');
    assert.ok(!flags['cp-a'].includes('in-use'), `cp-a closed cleanly: ${flags['cp-a']}`);
    await run('qemu-img', ['bitmap', '--remove', disk, 'cp-b']);

    await page.goto(`${d.url}/#/d/${dom}/checkpoints`);
    await page.locator('li[data-checkpoint="cp-b"]').waitFor();
    await page.getByRole('button', { name: 'Reconcile', exact: true }).click();
    const result = page.locator('#reconcile-result');
    await result.waitFor({ timeout: 60000 });
    const node = page.locator('li[data-checkpoint="cp-b"] .node');
    await node.locator('.badge', { hasText: 'broken' }).waitFor();
    assert.match(await node.innerText(), /broken/);
    // Its neighbour keeps its bitmap and stays sound.
    const neighbour = await page.locator('li[data-checkpoint="cp-a"] .node').innerText();
    const a = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/checkpoints/cp-a`)).data;
    assert.doesNotMatch(neighbour, /broken/);
    assert.equal(a.state, 'ok');
    const api = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/checkpoints/cp-b`)).data;
    assert.equal(api.state, 'broken');
    assert.match(api.reason, /missing/);
    await shot(page, 'checkpoints-broken');

    // The domains list says the chain is not healthy.
    await page.goto(`${d.url}/#/?q=${dom}`);
    const cell = page.locator(`tr[data-domain="${dom}"] td`).nth(3);
    await cell.locator('.badge', { hasText: '1 broken' }).waitFor();
    await shot(page, 'checkpoints-broken-in-list');
  } finally {
    await page.context().close();
  }
});

test('deletes a (broken) checkpoint after confirmation', async (t) => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${dom}/checkpoints`);
    await page.locator('li[data-checkpoint="cp-b"]').waitFor();
    await page.getByRole('button', { name: 'Delete checkpoint cp-b' }).click();
    const dlg = page.getByRole('dialog', { name: 'Delete checkpoint “cp-b”?' });
    await dlg.waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel');
    await dlg.getByRole('button', { name: 'Delete cp-b' }).click();
    await dlg.waitFor({ state: 'detached', timeout: 60000 });
    await page.locator('li[data-checkpoint="cp-b"]').waitFor({ state: 'detached' });
    await page.locator('.result', { hasText: 'Checkpoint cp-b deleted.' }).waitFor();
    const names = (await apiJson(d.url, 'GET', `/v1/domains/${dom}/checkpoints`)).data.items.map((c) => c.name);
    assert.deepEqual(names, ['cp-a']);
    await shot(page, 'checkpoints-deleted');
  } finally {
    await page.context().close();
  }
});
