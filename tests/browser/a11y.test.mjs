// Keyboard use and narrow screens, on test:///default: a snapshot taken with the keyboard
// alone, focus visible and managed by the dialogs, and no page wider than a phone.

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

test('every page fits a phone screen without sideways scrolling', async () => {
  const page = await newPage(b.browser, d.url, { viewport: { width: 360, height: 740 } });
  try {
    for (const [name, path, sel] of [
      ['domains', '/#/', '#domains-table'],
      ['snapshots', '/#/d/test/snapshots', 'ul.tree, .empty'],
      ['checkpoints', '/#/d/test/checkpoints', 'ol.chain, .empty, .problem'],
      ['backups', '/#/d/test/backups', '.problem, .empty, #backups-table'],
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
