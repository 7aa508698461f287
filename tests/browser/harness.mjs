// The browser tests' harness: the real daemon on a free port, Debian's chromium driven by
// playwright-core, the hypervisor sandbox, and a screenshot of every test in out/browser/.
//
// Environment: VIRTVAULTD (default build/virtvaultd), CHROMIUM (default /usr/bin/chromium),
// VIRTVAULT_BROWSER_OUT (default out/browser).

import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const OUT = resolve(ROOT, process.env.VIRTVAULT_BROWSER_OUT ?? 'out/browser');
const DAEMON = resolve(ROOT, process.env.VIRTVAULTD ?? 'build/virtvaultd');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const run = promisify(execFile);

mkdirSync(OUT, { recursive: true });

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * Starts virtvaultd with a fresh database and vault and the web UI of this tree.
 * opts.uri: libvirt URI (default test:///default); opts.tokens: {token: role} for a token file;
 * opts.args: more options. Resolves with {url, stop(), log()} once /healthz answers.
 */
export async function startDaemon(opts = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'virtvault-browser-'));
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, '--libvirt-uri', opts.uri ?? 'test:///default',
    '--db', join(dir, 'virtvault.db'), '--vault-dir', join(dir, 'vault'), '--web-dir', join(ROOT, 'web'),
    '--log-level', 'debug'];
  if (opts.tokens) {
    const file = join(dir, 'tokens');
    writeFileSync(file, Object.entries(opts.tokens)
      .map(([tok, role]) => `sha256:${createHash('sha256').update(tok).digest('hex')} ${role}\n`).join(''));
    args.push('--token-file', file);
  } else {
    args.push('--no-auth');
  }
  if (opts.args) args.push(...opts.args);
  const logFile = join(dir, 'daemon.log');
  let log = '';
  const child = spawn(DAEMON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (b) => { log += b; });
  child.stderr.on('data', (b) => { log += b; });
  let exited = null;
  child.on('exit', (code, sig) => { exited = code ?? sig; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exited !== null) throw new Error(`virtvaultd exited (${exited}) at start:\n${log}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`virtvaultd did not answer /healthz in 15 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    dir,
    log: () => log,
    async stop() {
      if (exited === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10000);
        await gone;
        clearTimeout(t);
      }
      writeFileSync(logFile, log);
      if (!process.env.VIRTVAULT_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Launches headless chromium; resolves with {browser, close()}. playwright gives every launch
 * a fresh --user-data-dir of its own (a temporary folder it removes on close), which is why
 * it is not passed here (playwright refuses it in launch()).
 */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // The network of test machines may be closed: without these, chromium keeps trying.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return { browser, close: () => browser.close() };
}

/**
 * A new page that records every request to another host (page.foreign: the UI must make
 * none) and console errors (page.consoleErrors). Requests are watched, not intercepted:
 * interception would slow every request down and skew the render times measured.
 */
export async function newPage(browser, base, opts = {}) {
  const context = await browser.newContext({ viewport: opts.viewport ?? { width: 1280, height: 860 } });
  const page = await context.newPage();
  const origin = new URL(base).origin;
  page.foreign = [];
  page.consoleErrors = [];
  context.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:')) page.foreign.push(u);
  });
  page.on('console', (m) => {
    // The browser logs every non-2xx answer; those are the API speaking, checked by the tests.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) page.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => page.consoleErrors.push(String(e)));
  return page;
}

/**
 * Saves a screenshot as out/browser/NAME.png: the full page, or with fullPage false the
 * viewport (long lists render rows only as they come into view, which a full-page picture
 * does not do).
 */
export async function shot(page, name, { fullPage = true } = {}) {
  const path = join(OUT, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}

// --- the hypervisor sandbox (scripts/sandbox) ---

const SANDBOX = join(ROOT, 'scripts/sandbox');

/**
 * Runs scripts/sandbox with args; resolves with its output. When libvirtd does not answer
 * (other tests on the machine stop and start it on purpose), brings it up and tries once more.
 */
export async function sandbox(...args) {
  const opts = { timeout: 180000, maxBuffer: 1 << 24 };
  try {
    return (await run(SANDBOX, args, opts)).stdout;
  } catch (e) {
    if (args[0] === 'up' || !/does not answer/.test(String(e.stderr ?? e.message))) throw e;
    await run(SANDBOX, ['up'], opts);
    return (await run(SANDBOX, args, opts)).stdout;
  }
}

/** True when a QEMU libvirt answers (or can be started) at qemu:///system. */
export async function hypervisorUp() {
  try {
    await sandbox('up');
    return true;
  } catch {
    return false;
  }
}

export async function virsh(...args) {
  const { stdout } = await run('virsh', ['-c', 'qemu:///system', ...args], { timeout: 60000 });
  return stdout;
}

/** A name unique to this run, for sandbox domains. */
export function uniqueName(prefix) {
  return `${prefix}-${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
}

/** JSON from the daemon directly (for setup and for checks of what the UI did). */
export async function apiJson(base, method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined || ['POST', 'PUT', 'PATCH'].includes(method)) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { status: r.status, data, location: r.headers.get('location') };
}

export { readFileSync };
