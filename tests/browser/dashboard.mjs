// The dashboard in a real browser: Debian's Chromium driven by playwright-core
// (no downloaded browser). Started by run.py, which gives it a running stack:
//   STRATQ_URL, STRATQ_TOKEN (auth is on), STRATQ_SHOTS (screenshot dir),
//   STRATQ_EXAMPLES, CHROMIUM, STRATQ_PROFILE (a fresh user-data-dir).
// Every wait has a deadline; any failed check or console error exits 1.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const URL = process.env.STRATQ_URL;
const TOKEN = process.env.STRATQ_TOKEN;
const SHOTS = process.env.STRATQ_SHOTS;
const EXAMPLES = process.env.STRATQ_EXAMPLES;
const DEADLINE = 20000; // ms, for any one condition
mkdirSync(SHOTS, { recursive: true });

const t0 = Date.now();
const step = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);

async function api(method, path, body) {
  const res = await fetch(URL + path, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function until(what, fn, timeout = DEADLINE) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const quick = (i) => ({ code: `import time\ndef run(ctx):\n    time.sleep(0.4)\n    return ${i}\n` });
const failing = { code: 'def run(ctx):\n    ctx.log("about to fail", step=1)\n    raise ValueError("no edge today")\n' };
const slow = {
  code: 'import time\ndef run(ctx):\n    for i in range(600):\n        ctx.progress(i / 600, f"step {i} of 600")\n        print("step", i, flush=True)\n        time.sleep(0.1)\n    return "done"\n',
};
const backtest = {
  code: readFileSync(join(EXAMPLES, 'ma_crossover.py'), 'utf8'),
  data_csv: readFileSync(join(EXAMPLES, 'data', 'prices.csv'), 'utf8'),
  params: { fast: 20, slow: 50 },
};

const consoleErrors = [];
let expect401 = true; // until the token is given, the first calls answer 401

const browser = await chromium.launchPersistentContext(process.env.STRATQ_PROFILE, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 860 },
  deviceScaleFactor: 1,
});
let failed = false;
try {
  const page = browser.pages()[0] || (await browser.newPage());
  page.setDefaultTimeout(DEADLINE);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expect401 && /status of 401/.test(m.text())) return;
    consoleErrors.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // A stream aborted by the browser itself is not an error.
    if (!r.url().endsWith('/v1/events')) consoleErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });

  // 1. The static files need no token; the page asks for one.
  step('overview: token prompt');
  const resp = await page.goto(URL + '/');
  if (resp.status() !== 200) throw new Error(`GET / -> ${resp.status()}`);
  const csp = resp.headers()['content-security-policy'] || '';
  if (!csp.includes("default-src 'self'")) throw new Error(`no strict CSP on /: ${csp}`);
  await page.waitForSelector('#token-dialog[open]');
  await page.fill('#token-input', TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.waitForFunction(() => !document.querySelector('#token-dialog').open);
  expect401 = false;

  // Live numbers: the events stream is connected, the cards show the queue.
  step('overview: live numbers');
  await page.waitForSelector('#live[data-state="on"]');
  await page.waitForFunction(() => document.querySelector('[data-card="workers"] .value')?.textContent === '2');
  const finishedBefore = Number(await page.textContent('[data-card="finished"] .value'));
  const batch = await api('POST', '/v1/jobs/batch', { jobs: Array.from({ length: 12 }, (_, i) => quick(i)) });
  const batchIds = batch.jobs.map((j) => j.id);
  await page.waitForFunction((n) => Number(document.querySelector('[data-card="finished"] .value')?.textContent) >= n,
    finishedBefore + batchIds.length, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll('#events li .badge').length >= 5);
  await page.waitForFunction(() => Number(document.querySelector('#queue-chart')?.dataset.points) >= 3);

  // 2. A submitted job appears in the list and moves to succeeded.
  step('jobs: a submitted job appears and succeeds');
  const { id: btId } = await api('POST', '/v1/jobs', backtest);
  await page.goto(URL + '/#/jobs');
  await page.waitForSelector(`tr[data-job="${btId}"]`);
  await page.waitForSelector(`tr[data-job="${btId}"][data-status="succeeded"]`, { timeout: 30000 });

  // Failed ones for the list and the failed page.
  const { id: failId } = await api('POST', '/v1/jobs', failing);
  await until('the failing job to fail', async () => (await api('GET', `/v1/jobs/${failId}`)).status === 'failed');
  await page.waitForSelector(`tr[data-job="${failId}"][data-status="failed"]`);
  await page.screenshot({ path: join(SHOTS, 'jobs.png') });
  const filtered = page.locator('#filters a', { hasText: /^succeeded$/ });
  await filtered.click();
  await page.waitForFunction(() => location.hash === '#/jobs?status=succeeded');
  await page.waitForSelector(`tr[data-job="${btId}"]`);
  if (await page.locator(`tr[data-job="${failId}"]`).count()) throw new Error('the status filter shows a failed job');

  // 3. Its detail page draws the equity curve.
  step('job: equity curve');
  await page.click(`tr[data-job="${btId}"] a`);
  await page.waitForFunction((id) => location.hash === `#/jobs/${id}`, btId);
  await page.waitForSelector('#equity-chart');
  const points = await page.$eval('#equity-chart', (c) => Number(c.dataset.points));
  if (points < 100) throw new Error(`equity chart has ${points} points`);
  const inked = await page.$eval('#equity-chart', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n / (c.width * c.height);
  });
  if (inked < 0.05) throw new Error(`equity chart looks blank (${(inked * 100).toFixed(1)}% of pixels drawn)`);
  await page.waitForSelector('#timeline li.ok');
  await page.waitForSelector('#spec pre');
  await page.screenshot({ path: join(SHOTS, 'job.png'), fullPage: true });

  // 4. Retry on a failed job works.
  step('failed: retry');
  await page.goto(URL + '/#/failed');
  await page.waitForSelector(`tr[data-job="${failId}"][data-status="failed"]`);
  await page.screenshot({ path: join(SHOTS, 'failed.png') });
  await page.click(`tr[data-job="${failId}"] button[data-action="retry"]`);
  await until('the retried job to run again and end', async () => {
    const j = await api('GET', `/v1/jobs/${failId}`);
    return j.attempts === 2 && j.retried_ms && j.status === 'failed';
  });
  await page.waitForSelector(`tr[data-job="${failId}"][data-status="failed"]`);

  // 5. Cancel on a running job works; the progress bar shows while it runs.
  step('job: progress and cancel');
  const { id: slowId } = await api('POST', '/v1/jobs', slow);
  await page.goto(`${URL}/#/jobs/${slowId}`);
  await page.waitForSelector('.page-head [data-status="running"]');
  await page.waitForFunction(() => Number(document.querySelector('#progress [role=progressbar]')?.getAttribute('aria-valuenow')) >= 3);
  await page.waitForFunction(() => (document.querySelector('#output')?.textContent || '').includes('step 2'));
  await page.screenshot({ path: join(SHOTS, 'job-running.png') });
  await page.click('.page-head button[data-action="cancel"]');
  await page.waitForSelector('.page-head [data-status="cancelled"]', { timeout: 15000 });
  const cancelled = await api('GET', `/v1/jobs/${slowId}`);
  if (cancelled.status !== 'cancelled') throw new Error(`cancelled job is ${cancelled.status}`);
  if (await page.locator('#progress').count()) throw new Error('progress bar still shown after the job ended');

  // 6. Workers, with their sandbox layers.
  step('workers');
  await page.goto(URL + '/#/workers');
  await page.waitForFunction(() => document.querySelectorAll('[data-worker]').length === 2);
  await page.waitForSelector('[data-worker] .chips .badge');
  await page.screenshot({ path: join(SHOTS, 'workers.png') });

  // Overview last, with the activity above on its charts; then on a phone.
  step('overview screenshots');
  await page.goto(URL + '/#/');
  await page.waitForFunction(() => Number(document.querySelector('#queue-chart')?.dataset.points) >= 3);
  await page.waitForSelector('#live[data-state="on"]');
  await page.screenshot({ path: join(SHOTS, 'overview.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(() => document.querySelector('#queue-chart')?.clientWidth < 390);
  // The resize redraw (debounced) sizes the canvas to its new box.
  await page.waitForFunction(() => {
    const c = document.querySelector('#queue-chart');
    return c && c.width === Math.round(c.clientWidth * devicePixelRatio);
  });
  await page.screenshot({ path: join(SHOTS, 'overview-phone.png'), fullPage: true });

  if (consoleErrors.length) throw new Error(`console errors:\n  ${consoleErrors.join('\n  ')}`);
  step('all checks passed');
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e.message}`);
  if (consoleErrors.length) console.error(`console errors:\n  ${consoleErrors.join('\n  ')}`);
  try {
    const p = browser.pages()[0];
    const shot = join(dirname(process.env.STRATQ_PROFILE), 'failure.png');
    if (p) await p.screenshot({ path: shot, fullPage: true });
    console.error(`screenshot of the failure: ${shot}`);
  } catch {}
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
