// "Browse files" against a sandbox QEMU domain whose disk holds two real ext4 partitions (made
// with sfdisk and mkfs.ext4 -d, never mounted): the cold opening state, the filesystems, the
// directory table, breadcrumbs, a symlink, a download whose bytes are the file's; and a disk
// without a filesystem, whose 422 is shown as the API states it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, writeFileSync, readFileSync, symlinkSync, chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, launchBrowser, newPage, shot, sandbox, uniqueName, apiJson, virsh } from './harness.mjs';

const run = promisify(execFile);

let b;
let d;
let fsDom;
let rawDom;
let fsBackup;
let rawBackup;
const HOSTNAME = 'browser-files\n';
const LOG = Buffer.alloc(3000, 'x');
const MANY = 620; // more than one page of a listing (the UI asks for 500)

async function backUp(dom) {
  const r = await apiJson(d.url, 'POST', `/v1/domains/${dom}/backups`, { type: 'full' });
  assert.equal(r.status, 202, JSON.stringify(r.data));
  const job = (await apiJson(d.url, 'GET', `/v1/jobs/${r.data.job_id}?wait=120`)).data;
  assert.equal(job.state, 'succeeded', JSON.stringify(job));
  return r.data;
}

/**
 * A stopped sandbox domain's vda replaced by a partitioned disk (made, never mounted): an
 * MBR with two ext4 partitions, "root" holding tree and "data" holding one file.
 */
async function ext4Domain(name, dir) {
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  mkdirSync(join(tree, 'var', 'log'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'hostname'), HOSTNAME);
  symlinkSync('hostname', join(tree, 'etc', 'name-link'));
  writeFileSync(join(tree, 'etc', 'shadow'), 'root:*:1::::::\n');
  chmodSync(join(tree, 'etc', 'shadow'), 0o600);
  for (let i = 0; i < 3; i++) writeFileSync(join(tree, 'var', 'log', `app-${i}.log`), LOG);
  mkdirSync(join(tree, 'many'));
  for (let i = 0; i < MANY; i++) writeFileSync(join(tree, 'many', `f${String(i).padStart(4, '0')}`), '');
  const data = join(dir, 'data');
  mkdirSync(data);
  writeFileSync(join(data, 'readme.txt'), 'the second partition\n');
  await sandbox('domain-create', name, '--size', '64M', '--no-start');
  const img = (await virsh('domblklist', name)).split('\n').map((l) => l.trim().split(/\s+/))
    .find((p) => p[0] === 'vda')[1];
  const raw = join(dir, 'disk.raw');
  await run('truncate', ['-s', '64M', raw]);
  // sectors of 512 bytes: root from 1 MiB, 40 MiB long; data after it, to the end.
  const table = spawnSync('sfdisk', ['-q', raw], { input: 'label: dos\nstart=2048, size=81920, type=83\nstart=83968, type=83\n' });
  assert.equal(table.status, 0, String(table.stderr));
  await run('mkfs.ext4', ['-q', '-F', '-L', 'root', '-d', tree, '-E', 'offset=1048576,root_owner=0:0', raw, '40M']);
  await run('mkfs.ext4', ['-q', '-F', '-L', 'data', '-d', data, '-E', `offset=${83968 * 512},root_owner=0:0`, raw,
    `${(64 * 1024 * 1024 - 83968 * 512) / 1024}K`]);
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-o', 'compat=1.1', raw, `${img}.new`]);
  await run('mv', ['-f', `${img}.new`, img]);
  rmSync(raw);
  await virsh('start', name);
}

before(async () => {
  b = await launchBrowser();
  await sandbox('up');
  d = await startDaemon({ uri: 'qemu:///system' });
  fsDom = uniqueName('vvb-fs');
  await ext4Domain(fsDom, d.dir);
  fsBackup = await backUp(fsDom);
  rawDom = uniqueName('vvb-raw');
  await sandbox('domain-create', rawDom, '--size', '64M');
  await sandbox('write', rawDom, '0', '4M', 'random');
  rawBackup = await backUp(rawDom);
});
after(async () => {
  await b?.close();
  await d?.stop();
  for (const dom of [fsDom, rawDom]) if (dom) await sandbox('domain-remove', dom).catch(() => {});
});

test('"Browse files" opens the backup, walks its directories and downloads a file', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${fsDom}/backups`);
    const row = page.locator(`tr[data-backup="${fsBackup.id}"]`);
    await row.waitFor();
    await row.getByRole('button', { name: /^Browse the files of backup/ }).click();
    const browser = page.locator('#file-browser');
    // A cold backup point: the page says that opening takes a while, then lists what is there.
    await browser.locator('.opening[role=status]', { hasText: 'about 30 s the first time' }).waitFor();
    await shot(page, 'files-opening', { fullPage: false });
    const fss = browser.locator('#filesystems-table');
    await browser.locator('#filesystems-table, .problem').first().waitFor({ timeout: 240000 });
    if (await browser.locator('.problem').count()) assert.fail(await browser.locator('.problem').innerText());
    const labels = await fss.locator('tbody tr').evaluateAll((rows) => rows.map((r) => [r.dataset.filesystem,
      r.cells[1].innerText, r.cells[2].innerText]));
    assert.deepEqual(labels, [['/dev/sda1', 'ext4', 'root'], ['/dev/sda2', 'ext4', 'data']]);
    await shot(page, 'files-filesystems');

    // The second partition, then back to the disk and into the first.
    await fss.getByRole('button', { name: '/dev/sda2' }).click();
    const second = browser.locator('#files-table[data-path="/"]');
    await second.locator('tr[data-name="readme.txt"]').waitFor();
    const crumbs = browser.getByRole('navigation', { name: 'Path' });
    await crumbs.getByRole('button', { name: 'vda' }).click();
    await fss.getByRole('button', { name: '/dev/sda1' }).click();
    const table = browser.locator('#files-table[data-path="/"]');
    await table.locator('tr[data-name=etc]').waitFor();
    for (const n of ['etc', 'var', 'lost+found']) await table.locator(`tr[data-name="${n}"][data-type=directory]`).waitFor();

    // Into /etc with the keyboard.
    await table.getByRole('button', { name: 'Open directory etc' }).focus();
    await page.keyboard.press('Enter');
    const etc = browser.locator('#files-table[data-path="/etc"]');
    await etc.waitFor();
    const host = etc.locator('tr[data-name=hostname]');
    const cells = await host.locator('td').allInnerTexts();
    assert.deepEqual(cells.slice(1, 4), ['file', `${HOSTNAME.length} B`, '0644']);
    assert.match(cells[4], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.equal((await etc.locator('tr[data-name=shadow] td').allInnerTexts())[3], '0600');
    const link = etc.locator('tr[data-name=name-link]');
    assert.equal(await link.getAttribute('data-type'), 'symlink');
    assert.match(await link.innerText(), /→ hostname/);
    // The breadcrumbs: the disk, the filesystem's root, etc (current).
    assert.deepEqual(await crumbs.locator('li').allInnerTexts(), ['vda', '/dev/sda1 /', 'etc']);
    assert.equal(await crumbs.locator('[aria-current=location]').innerText(), 'etc');
    await shot(page, 'files-etc');

    // The download link gives the file's bytes.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      host.getByRole('link', { name: /^Download hostname/ }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'hostname');
    assert.equal(readFileSync(await download.path(), 'utf8'), HOSTNAME);

    // Back to / by the breadcrumb, down to /var/log: warm now, no opening state.
    await crumbs.getByRole('button', { name: /\/$/ }).click();
    await table.waitFor();
    await table.getByRole('button', { name: 'Open directory var' }).click();
    await browser.locator('#files-table[data-path="/var"]').getByRole('button', { name: 'Open directory log' }).click();
    const log = browser.locator('#files-table[data-path="/var/log"]');
    await log.waitFor();
    assert.equal(await log.locator('tbody tr[data-type=file]').count(), 3);
    assert.equal((await log.locator('tr[data-name="app-1.log"] td').allInnerTexts())[2], '2.9 KiB');
    assert.equal(await browser.locator('.opening').count(), 0);
    // ".. (up)" goes to the parent.
    await log.getByRole('button', { name: 'Up to /var' }).click();
    await browser.locator('#files-table[data-path="/var"]').waitFor();

    // A folder longer than a page: "Show more" adds the next page, and then there is no more.
    await crumbs.getByRole('button', { name: /\/$/ }).click();
    await table.getByRole('button', { name: 'Open directory many' }).click();
    const many = browser.locator('#files-table[data-path="/many"]');
    await many.waitFor();
    assert.equal(await many.locator('tbody tr[data-type=file]').count(), 500);
    await browser.getByRole('button', { name: 'Show more' }).click();
    await many.locator(`tr[data-name="f${String(MANY - 1).padStart(4, '0')}"]`).waitFor();
    assert.equal(await many.locator('tbody tr[data-type=file]').count(), MANY);
    assert.equal(await browser.getByRole('button', { name: 'Show more' }).count(), 0);

    // The same listing as the API gives.
    const api = (await apiJson(d.url, 'GET',
      `/v1/domains/${fsDom}/backups/${fsBackup.id}/disks/vda/files?path=/etc&filesystem=/dev/sda1`)).data;
    assert.deepEqual(api.items.map((i) => i.name).sort(), ['hostname', 'name-link', 'shadow']);

    await browser.getByRole('button', { name: 'Close' }).click();
    assert.equal(await browser.isHidden(), true);
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('"Browse files" on a disk without a filesystem shows the API\'s 422', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/#/d/${rawDom}/backups`);
    const row = page.locator(`tr[data-backup="${rawBackup.id}"]`);
    await row.waitFor();
    await row.getByRole('button', { name: /^Browse the files of backup/ }).click();
    const problem = page.locator('#file-browser .problem');
    await problem.waitFor({ timeout: 240000 });
    const expected = (await apiJson(d.url, 'GET',
      `/v1/domains/${rawDom}/backups/${rawBackup.id}/disks/vda/files?path=/`)).data;
    assert.equal(expected.status, 422);
    assert.match(await problem.innerText(), /HTTP 422/);
    assert.equal(await problem.locator('.p-title').innerText(), expected.title);
    assert.equal(await problem.locator('.p-detail').innerText(), expected.detail);
    await shot(page, 'files-no-filesystem');
  } finally {
    await page.context().close();
  }
});
