// Keyboard use and narrow screens, on test:///default: a snapshot taken with the keyboard
// alone, focus visible and managed by the dialogs, a remote added with the keyboard alone (its
// field errors read with their fields), and no page wider than a phone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, launchBrowser, newPage, shot, apiJson } from './harness.mjs';

let b;
let d;
before(async () => {
  b = await launchBrowser();
  d = await startDaemon();
});
after(async () => {
  await b?.close();
  await d?.stop();
});

/** Presses Tab until the focused element matches pred (at most 40 times). */
async function tabTo(page, pred, what) {
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(pred)) return;
  }
  assert.fail(`Tab never reached ${what}`);
}

test('a snapshot can be taken with the keyboard alone, with focus visible throughout', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/`);
    await page.locator('tr[data-domain="test"]').waitFor();
    await tabTo(page, () => document.activeElement.textContent === 'test', 'the domain link');
    await page.keyboard.press('Enter');
    await page.locator('.empty, ul.tree').first().waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1');

    await tabTo(page, () => document.activeElement.textContent === 'Take snapshot', 'Take snapshot');
    // The focused control shows it: a real outline, not the browser's nothing.
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
    await shot(page, 'a11y-focus-visible');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.name), 'name');
    await page.keyboard.type('by-keyboard');
    // Tab stays inside the modal dialog.
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press('Tab');
      assert.ok(await page.evaluate(() => Boolean(document.activeElement.closest('dialog'))), 'focus left the dialog');
    }
    await page.locator('dialog input[name=name]').focus();
    await page.keyboard.press('Enter');
    await page.locator('li[data-snapshot="by-keyboard"]').waitFor({ timeout: 60000 });
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Take snapshot');
    assert.equal((await apiJson(d.url, 'GET', '/v1/domains/test/snapshots/current')).data.name, 'by-keyboard');

    // Every control is a real button or link with a name.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, a[href], input, select')]
      .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || el.labels?.length))
      .map((el) => el.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
    assert.equal(await page.locator('[onclick], div[role=button], span[role=button]').count(), 0);
  } finally {
    await page.context().close();
  }
});

test('a remote can be added with the keyboard alone; a bad field is named and focused', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/`);
    await page.locator('tr[data-domain="test"]').waitFor();
    await tabTo(page, () => document.activeElement.id === 'nav-remotes', 'the Remotes link');
    await page.keyboard.press('Enter');
    await page.locator('.empty', { hasText: 'No remotes yet' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Remotes');
    await tabTo(page, () => document.activeElement.textContent === 'New remote', 'New remote');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.name), 'name');
    // Name, endpoint, region, bucket, prefix, access key, secret: typed, Tab between them.
    for (const v of ['kbd', 'not-a-url', '', 'bkt', '', 'AKIAKEYBOARD', 'secret']) {
      if (v) await page.keyboard.type(v);
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Enter'); // the Enter key in a field submits the form
    const err = page.locator('#remote-dialog [data-error-for="endpoint"]');
    await err.filter({ hasText: /\S/ }).waitFor();
    assert.match(await err.innerText(), /^endpoint: must be an http/);
    assert.deepEqual(await page.evaluate(() => [document.activeElement.name, document.activeElement.getAttribute('aria-invalid')]),
      ['endpoint', 'true']);
    await page.keyboard.press('Control+A');
    await page.keyboard.type('http://127.0.0.1:9');
    // Every control of the dialog is named.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('#remote-dialog button, #remote-dialog input, #remote-dialog select')]
      .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || el.labels?.length))
      .map((el) => el.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
    await page.keyboard.press('Enter');
    await page.locator('#remote-dialog').waitFor({ state: 'detached' });
    await page.locator('tr[data-remote="kbd"]').waitFor();
    // Focus lands on the new remote's first action.
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Check remote kbd');
    const got = (await apiJson(d.url, 'GET', '/v1/remotes/kbd')).data;
    assert.deepEqual([got.endpoint, got.bucket, got.access_key, got.secret_set], ['http://127.0.0.1:9', 'bkt', 'AKIAKEYBOARD', true]);
    const unnamedPage = await page.evaluate(() => [...document.querySelectorAll('main button, main a[href], main input, main select')]
      .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || el.labels?.length))
      .map((el) => el.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamedPage, []);
    await shot(page, 'a11y-remote-keyboard');
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});

test('every page fits a phone screen without sideways scrolling', async () => {
  const page = await newPage(b.browser, d.url, { viewport: { width: 360, height: 740 } });
  // A remote to list (its bucket is never reached here).
  const r = await apiJson(d.url, 'POST', '/v1/remotes', { name: 'offsite-a11y', endpoint: 'https://s3.example.com:9000',
    bucket: 'a-long-bucket-name-for-narrow-screens', prefix: 'site/a/b', access_key: 'AKIAEXAMPLEEXAMPLE', secret: 's', lock_days: 30 });
  assert.equal(r.status, 201, JSON.stringify(r.data));
  try {
    for (const [name, path, sel] of [
      ['domains', '/#/', '#domains-table'],
      ['snapshots', '/#/d/test/snapshots', 'ul.tree, .empty'],
      ['checkpoints', '/#/d/test/checkpoints', 'ol.chain, .empty, .problem'],
      ['backups', '/#/d/test/backups', '.problem, .empty, #backups-table'],
      ['policies', '/#/policies', '#policies-table, .empty'],
      ['remotes', '/#/remotes', '#remotes-table'],
    ]) {
      await page.goto(`${d.url}${path}`);
      await page.locator(sel).first().waitFor();
      await page.waitForTimeout(200);
      const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      assert.ok(scroll <= width, `${name}: ${scroll} px wide on a ${width} px screen`);
      await shot(page, `phone-${name}`);
    }
  } finally {
    await page.context().close();
  }
});
