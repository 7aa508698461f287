// A daemon with a token file: the UI asks for a token on the first 401, shows the API's
// problem, keeps the token for the browser session only and sends it as a bearer token.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, launchBrowser, newPage, shot } from './harness.mjs';

let b;
before(async () => { b = await launchBrowser(); });
after(async () => { await b?.close(); });

test('a 401 asks for a token, which is kept in sessionStorage and sent as Bearer', async () => {
  const token = 'browser-test-token-0123456789abcdef';
  const d = await startDaemon({ tokens: { [token]: 'admin' } });
  const page = await newPage(b.browser, d.url);
  const sent = [];
  const events = [];
  page.on('request', (r) => {
    if (r.url().includes('/v1/domains')) sent.push(r.headers().authorization ?? null);
    if (r.url().endsWith('/v1/events')) events.push(r.headers().authorization ?? null);
  });
  try {
    await page.goto(`${d.url}/`);
    const dlg = page.locator('#token-dialog');
    await dlg.waitFor({ state: 'visible' });
    // The API's own words: its title and detail.
    await dlg.getByText("send 'Authorization: Bearer <token>'").waitFor();
    assert.match(await dlg.locator('.p-title').innerText(), /\S/);
    // Focus is in the dialog, on the token field.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'token-input');
    await shot(page, 'auth-prompt');

    // A wrong token: asked again, with the API's reason.
    await page.keyboard.type('not-the-token');
    await page.keyboard.press('Enter');
    await dlg.getByText('the token is not valid').waitFor();
    await shot(page, 'auth-wrong-token');

    await page.fill('#token-input', token);
    await page.keyboard.press('Enter');
    await page.locator('#domains-table tr[data-domain="test"]').waitFor();
    assert.equal(await dlg.isVisible(), false);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('virtvault.token')), token);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.ok(sent.includes(`Bearer ${token}`), JSON.stringify(sent));
    // The event stream, refused before, is asked for again with the token at once.
    for (let i = 0; i < 50 && !events.includes(`Bearer ${token}`); i++) await page.waitForTimeout(100);
    assert.ok(events.includes(`Bearer ${token}`), JSON.stringify(events));

    // The same tab keeps it across a reload; a new context (another session) does not have it.
    await page.reload();
    await page.locator('#domains-table tr[data-domain="test"]').waitFor();
    assert.equal(await dlg.isVisible(), false);
    assert.equal(await page.locator('#forget-token').isVisible(), true);
    await shot(page, 'auth-signed-in');

    const other = await newPage(b.browser, d.url);
    await other.goto(`${d.url}/`);
    await other.locator('#token-dialog').waitFor({ state: 'visible' });
    // Cancelling leaves the API's problem on the page instead of a blank one.
    await other.locator('#token-dialog [data-close]').click();
    await other.locator('main .problem').getByText("send 'Authorization: Bearer <token>'").waitFor();
    await shot(other, 'auth-cancelled');
    await other.context().close();

    // A token is never in the daemon's log.
    assert.ok(!d.log().includes(token));
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
    await d.stop();
  }
});

test('a login link puts the token in sessionStorage and takes it out of the address bar', async () => {
  const token = 'login-link-token-0123456789abcdef';
  const d = await startDaemon({ tokens: { [token]: 'admin' } });
  const page = await newPage(b.browser, d.url);
  const seen = [];
  page.on('request', (r) => seen.push(r.url()));
  try {
    await page.goto(`${d.url}/#token=${token}`);
    await page.locator('#domains-table tr[data-domain="test"]').waitFor();
    assert.equal(await page.locator('#token-dialog').isVisible(), false);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('virtvault.token')), token);
    assert.equal(page.url(), `${d.url}/#/`);
    // about:blank and this page: the link's entry was replaced, not followed by another.
    assert.equal(await page.evaluate(() => history.length), 2);
    assert.ok(seen.every((u) => !u.includes(token)), 'the token went out in a URL');
    // A write from the UI passes the service's JSON, Host and Origin checks.
    const res = await page.evaluate(async (t) => {
      const r = await fetch('/v1/domains/test/snapshots', { method: 'POST', body: 'a=b',
        headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/x-www-form-urlencoded' } });
      return r.status;
    }, token);
    assert.equal(res, 415);
    assert.deepEqual(page.foreign, []);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
    await d.stop();
  }
});
