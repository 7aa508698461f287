// The body of scripts/screenshots: makes a demo domain with some history and photographs the
// domains page, the three tabs of the domain page, the policies page and the retention tab
// into docs/screenshots/.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startDaemon, launchBrowser, newPage, sandbox, apiJson } from '../tests/browser/harness.mjs';

const OUT = join(ROOT, 'docs', 'screenshots');
const DOM = 'demo-shots';
const OTHER = 'demo-shots-db';
mkdirSync(OUT, { recursive: true });

async function waitJob(base, location) {
  for (;;) {
    const { data } = await apiJson(base, 'GET', location);
    if (['succeeded', 'failed', 'cancelled'].includes(data.state)) return data;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function must(base, method, path, body) {
  const r = await apiJson(base, method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.data)}`);
  if (r.status === 202 && r.location) {
    const job = await waitJob(base, r.location);
    if (job.state !== 'succeeded') throw new Error(`${method} ${path}: job ${job.state} ${JSON.stringify(job.error)}`);
  }
  return r.data;
}

await sandbox('up');
await sandbox('domain-remove', DOM).catch(() => {});
await sandbox('domain-remove', OTHER).catch(() => {});
await sandbox('domain-create', DOM, '--size', '256M', '--disks', '2');
await sandbox('domain-create', OTHER, '--size', '64M', '--no-start');
const d = await startDaemon({ uri: 'qemu:///system' });
const b = await launchBrowser();
try {
  const base = `/v1/domains/${DOM}`;
  // History. Snapshots first: QEMU cannot revert an internal snapshot of disks that carry
  // dirty bitmaps, which the backups below leave.
  await sandbox('write', DOM, '0', '24M', 'random');
  await must(d.url, 'POST', `${base}/snapshots`, { name: 'before-upgrade', description: 'clean install', kind: 'full' });
  await must(d.url, 'POST', `${base}/snapshots`, { name: 'after-upgrade', kind: 'full' });
  await must(d.url, 'POST', `${base}/snapshots`, { name: 'config-change', kind: 'full' });
  // A branch: back to before the upgrade, and another way from there.
  await must(d.url, 'POST', `${base}/snapshots/before-upgrade/revert`, {});
  await must(d.url, 'POST', `${base}/snapshots`, { name: 'hotfix-only', description: 'upgrade skipped', kind: 'full' });
  // Backups with guest writes between them, and a checkpoint of its own.
  await must(d.url, 'POST', `${base}/backups`, { type: 'full' });
  for (const [off, len] of [['32M', '6M'], ['64M', '2M'], ['96M', '9M'], ['128M', '1M']]) {
    await sandbox('write', DOM, off, len, 'random');
    await must(d.url, 'POST', `${base}/backups`, { type: 'auto' });
  }
  await must(d.url, 'POST', `${base}/checkpoints`, { name: 'pre-migration', description: 'reference point' });
  await sandbox('write', DOM, '160M', '3M', 'random');
  const items = (await apiJson(d.url, 'GET', `${base}/backups`)).data.items ?? [];
  if (items[0]) await must(d.url, 'POST', `${base}/backups/${items[0].id}/verify`, {});

  const shots = [
    ['domains', '/#/?q=demo-shots', '#domains-table'],
    ['snapshots', `/#/d/${DOM}/snapshots`, 'ul.tree'],
    ['checkpoints', `/#/d/${DOM}/checkpoints`, 'ol.chain'],
    ['backups', `/#/d/${DOM}/backups`, '#backups-table'],
  ];
  for (const [name, path, sel] of shots) {
    // Other tests on the machine may restart libvirtd: wait until the daemon is ready, and
    // take the picture again when the page shows a problem.
    for (let attempt = 1; ; attempt++) {
      while ((await apiJson(d.url, 'GET', '/readyz')).status !== 200) await new Promise((r) => setTimeout(r, 500));
      const page = await newPage(b.browser, d.url, { viewport: { width: 1200, height: 760 } });
      await page.emulateMedia({ colorScheme: 'light' });
      await page.goto(`${d.url}${path}`);
      await page.locator(sel).waitFor();
      await page.waitForLoadState('networkidle').catch(() => {});
      await page.waitForTimeout(600);
      const problems = await page.locator('.problem:visible').count();
      if (problems && attempt < 5) {
        await page.context().close();
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      await page.screenshot({ path: join(OUT, `${name}.png`) });
      console.log(`docs/screenshots/${name}.png${problems ? ' (shows a problem: check it)' : ''}`);
      await page.context().close();
      break;
    }
  }
  // The policies page with a policy being edited (its next five runs), and the retention tab
  // on the domain's real backups.
  await must(d.url, 'POST', '/v1/policies', { name: 'nightly', domains: [DOM], schedule: '30 2 * * MON-FRI',
    backup: { type: 'auto' }, retention: { keep_last: 2 }, verify_after_days: 30, enabled: false });
  await must(d.url, 'POST', '/v1/policies', { name: 'web-hourly', domains: ['web-*'], schedule: '@hourly',
    backup: { type: 'auto' }, retention: { keep_hourly: 24, keep_daily: 7 } });
  const page = await newPage(b.browser, d.url, { viewport: { width: 1200, height: 760 } });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.goto(`${d.url}/#/policies`);
  await page.locator('#policies-table').waitFor();
  await page.getByRole('button', { name: 'Edit policy nightly' }).click();
  await page.locator('#next-runs li').nth(4).waitFor();
  await page.locator('#policy-schedule').focus();
  await page.waitForTimeout(400);
  await page.screenshot({ path: join(OUT, 'policies.png') });
  console.log('docs/screenshots/policies.png');
  await page.keyboard.press('Escape');
  await page.goto(`${d.url}/#/d/${DOM}/retention`);
  await page.locator('#retention-axis').waitFor();
  await page.waitForTimeout(400);
  await page.screenshot({ path: join(OUT, 'retention.png') });
  console.log('docs/screenshots/retention.png');
  await page.context().close();
} finally {
  await b.close();
  await d.stop();
  await sandbox('domain-remove', DOM).catch(() => {});
  await sandbox('domain-remove', OTHER).catch(() => {});
}
