// The UI's reading of policy schedules (web/js/cron.js, run in the browser) against the
// daemon's: for each expression of a table, the same verdict and, when refused, the same
// words as the 400 of POST /v1/policies; when taken, the same period (the gap between the
// next two fires) as the policy's period_seconds.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, launchBrowser, newPage, apiJson } from './harness.mjs';

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

const EXPRESSIONS = [
  // taken
  '0 3 * * *', '*/15 * * * *', '0 0 13 * FRI', '0 0 * * 7', '30 2 * * MON-FRI', '@weekly', '@ANNUALLY',
  '@hourly', '@monthly', '0 0 31 4,6 MON', '5/20 1-5/2 ? JAN-mar,dec sun', '0 0 29 2 *', '0,30 9-17 * * 1-5',
  '0 0 1 * *', '  0   12 *  * 0 ', '59 23 31 12 *', '0 0 */2 * 1', '7 7 7 7 7',
  // refused
  '0 0 30 2 *', '1,', '5 * * *', '0 24 * * *', '* * * * * *', '@sometimes', '*/0 * * * *', '5-1 * * * *',
  '0 0 * * 8', 'a b c d e', '0 0 1,,2 * *', '0 0 1, * *', '', '0 0 * JANUARY *', '60 * * * *', '0 0 0 * *',
  '0 0 * 13 *', '1-2-3 * * * *', '*/1001 * * * *', ' @daily', '0 0 31 2,4 *', 'x'.repeat(130),
];

test('the UI reads schedules as the daemon does: verdict, words and period', async () => {
  const page = await newPage(b.browser, d.url);
  try {
    await page.goto(`${d.url}/`);
    let taken = 0;
    for (const [i, expr] of EXPRESSIONS.entries()) {
      const read = () => page.evaluate(async (e) => {
        const { parseCron, nextRuns, CronError } = await import('/js/cron.js');
        try {
          parseCron(e);
          const [a, c] = nextRuns(e, 2);
          return { ok: true, period: (c - a) / 1000 };
        } catch (err) {
          if (!(err instanceof CronError)) throw err;
          return { ok: false, detail: err.message };
        }
      }, expr);
      const ui = await read();
      const r = await apiJson(d.url, 'POST', '/v1/policies', { name: `c${i}`, domains: [`none-${i}`], schedule: expr });
      const after = await read();
      if (r.status === 201) {
        taken++;
        assert.equal(ui.ok, true, `${JSON.stringify(expr)}: the daemon takes it, the UI says ${ui.detail}`);
        // Read around the request: a minute may turn between the two.
        assert.ok([ui.period, after.period].includes(r.data.period_seconds),
          `${JSON.stringify(expr)}: period ${r.data.period_seconds} s, the UI ${ui.period} s`);
        assert.equal((await apiJson(d.url, 'DELETE', `/v1/policies/c${i}`)).status, 204);
      } else {
        assert.equal(r.status, 400, JSON.stringify(r.data));
        assert.equal(ui.ok, false, `${JSON.stringify(expr)}: the daemon refuses it (${r.data.detail}), the UI takes it`);
        assert.equal(ui.detail, r.data.errors[0].detail, JSON.stringify(expr));
      }
    }
    assert.equal(taken, 18);
    assert.deepEqual(page.consoleErrors, []);
  } finally {
    await page.context().close();
  }
});
