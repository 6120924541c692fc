// stratq dashboard: hash routing over the /v1 API, live through /v1/events.
// Plain DOM (no innerHTML), no libraries; see docs/dashboard.md.
import { barChart, fmtNum, lineChart } from './charts.js';

// The job statuses and their properties come from the server (GET
// /v1/statuses, loaded before the first page): loadStatuses() fills these,
// and no status is named anywhere else in this file (the overview's cards
// are GET /v1/queue's counts, two of which share a status's name).
const TERMINAL = new Set();
const RETRYABLE = new Set();
const CANCELLABLE = new Set();
const SUCCEEDED = new Set(); // terminal and not retryable: see loadStatuses
const STATUSES = ['all']; // the filters of the jobs page
const FAILED = []; // the statuses the failed page lists
const MEANING = new Map(); // status -> the server's sentence about it
const TOKEN_KEY = 'stratq.token';

// --- DOM helpers -------------------------------------------------------------

function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);

function toast(msg, bad = false) {
  const t = h('div', { class: bad ? 'toast bad' : 'toast', role: 'status' }, msg);
  $('#toasts').append(t);
  setTimeout(() => t.remove(), 4000);
}

const statusLabel = (status) => String(status).replace(/_/g, ' ');
// The meaning is Markdown; a title shows it as plain text.
const meaningOf = (status) => (MEANING.get(status) || '').replace(/`/g, '');
// A job status's badge is green when it succeeded and red when it failed (the
// server's properties); other badges (waiting, running, worker states) get
// their colour from style.css by name.
const badge = (status) => h('span', {
  class: `badge ${status}${SUCCEEDED.has(status) ? ' ok' : FAILED.includes(status) ? ' bad' : ''}`,
  dataset: { status }, title: meaningOf(status) || null,
}, statusLabel(status));
const shortId = (id) => (id.length > 14 ? id.slice(0, 6) + '…' + id.slice(-6) : id);
const jobLink = (id, full = false) => h('a', { href: `#/jobs/${id}`, class: 'mono', title: id }, full ? id : shortId(id));

function fmtTime(ms) {
  if (ms == null) return '–';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  const time = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  if (new Date().toDateString() === d.toDateString()) return time;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${time}`;
}

function fmtDur(ms) {
  if (ms == null || !isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

function ago(ms) {
  if (ms == null) return '–';
  const d = Date.now() - ms;
  return d < 1500 ? 'just now' : `${fmtDur(d).replace(/ \d+ (s|min|h)$/, '')} ago`;
}

const timeCell = (ms) => h('span', { title: ms ? new Date(ms).toISOString() : '' }, ago(ms));

// --- API ---------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let tokenPromise = null;

// Shows the token dialog (once, however many calls are waiting) and resolves
// when the user has given a token.
function askToken(why) {
  if (!tokenPromise) {
    tokenPromise = new Promise((resolve) => {
      const dlg = $('#token-dialog');
      $('#token-why').textContent = why;
      const input = $('#token-input');
      input.value = '';
      const form = $('#token-form');
      const onSubmit = (ev) => {
        ev.preventDefault();
        const tok = input.value.trim();
        if (!tok) return;
        sessionStorage.setItem(TOKEN_KEY, tok);
        form.removeEventListener('submit', onSubmit);
        dlg.close();
        tokenPromise = null;
        resolve();
      };
      form.addEventListener('submit', onSubmit);
      dlg.addEventListener('cancel', (ev) => ev.preventDefault()); // Escape does not dismiss it
      if (!dlg.open) dlg.showModal();
      input.focus();
    });
  }
  return tokenPromise;
}

function authHeaders(extra) {
  const headers = { ...(extra || {}) };
  const tok = sessionStorage.getItem(TOKEN_KEY);
  if (tok) headers.Authorization = `Bearer ${tok}`;
  return headers;
}

async function authWait(status) {
  if (status === 403) sessionStorage.removeItem(TOKEN_KEY);
  await askToken(status === 403 ? 'That token was refused (403). Enter a valid one.'
    : 'This API has auth on: every /v1 route needs a bearer token.');
}

// Calls the API; returns the parsed body of a 2xx answer, throws ApiError
// otherwise. A 401 or 403 asks for a token and tries again.
async function api(path, opts = {}) {
  for (;;) {
    const res = await fetch(path, { ...opts, headers: authHeaders(opts.headers), cache: 'no-store' });
    if (res.status === 401 || res.status === 403) {
      await authWait(res.status);
      continue;
    }
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    if (!res.ok) throw new ApiError(res.status, (body && body.error) || `${res.status} ${res.statusText}`);
    return body;
  }
}

// A job succeeded when its status is terminal and cannot be retried: retry
// re-queues exactly the jobs that ended without success (retry.lua;
// tests/unit/test_status.c holds the table to that).
async function loadStatuses() {
  const { statuses } = await api('/v1/statuses');
  for (const s of statuses) {
    STATUSES.push(s.name);
    MEANING.set(s.name, s.meaning);
    if (s.terminal) TERMINAL.add(s.name);
    if (s.retryable) RETRYABLE.add(s.name);
    if (s.cancellable) CANCELLABLE.add(s.name);
    if (s.terminal && !s.retryable) SUCCEEDED.add(s.name);
    if (s.failure) FAILED.push(s.name);
  }
}

// --- Live events (fetch streaming: EventSource cannot send a token) --------

const eventListeners = new Set();
const onJobEvent = (fn) => (eventListeners.add(fn), () => eventListeners.delete(fn));

function setLive(on) {
  const el = $('#live');
  el.dataset.state = on ? 'on' : 'off';
  el.textContent = on ? 'live' : 'offline';
}

function dispatchBlock(block) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  }
  if (name !== 'job' || !data.length) return;
  let ev;
  try {
    ev = JSON.parse(data.join('\n'));
  } catch {
    return;
  }
  ev.at = Date.now();
  for (const fn of eventListeners) fn(ev);
}

// The stream is closed when the page is left: a page kept in the browser's
// back/forward cache would otherwise keep its connection, and after a few
// such pages (Chromium allows 6 connections to one host) the next load of
// the dashboard waits for ever. It is opened again when the page is shown.
let eventsAbort = null;
window.addEventListener('pagehide', () => eventsAbort?.abort());
window.addEventListener('pageshow', (ev) => ev.persisted && refresh());

async function streamEvents() {
  let backoff = 500;
  for (;;) {
    try {
      eventsAbort = new AbortController();
      const res = await fetch('/v1/events', { headers: authHeaders({ Accept: 'text/event-stream' }), cache: 'no-store', signal: eventsAbort.signal });
      if (res.status === 401 || res.status === 403) {
        await authWait(res.status);
        continue;
      }
      if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
      setLive(true);
      backoff = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf = (buf + value).replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          dispatchBlock(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch {
      // reconnect below
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 10000);
  }
}

// --- Live state kept across pages: queue samples and finished jobs --------

const BUCKET_MS = 10000;
const WINDOW_MS = 10 * 60 * 1000;
const stats = {
  queue: null, // last GET /v1/queue
  samples: [], // {t, pending, processing, scheduled}
  buckets: new Map(), // bucket start -> {ok, bad}
  recent: [], // last events
};
const statsListeners = new Set();

function countFinished(status, t) {
  const b = Math.floor(t / BUCKET_MS) * BUCKET_MS;
  const cur = stats.buckets.get(b) || { ok: 0, bad: 0 };
  if (SUCCEEDED.has(status)) cur.ok++;
  else cur.bad++;
  stats.buckets.set(b, cur);
  for (const k of stats.buckets.keys()) if (k < Date.now() - WINDOW_MS - BUCKET_MS) stats.buckets.delete(k);
}

// The banner under the header while the queue, or any tenant, is paused
// (GET /v1/queue's paused and paused_tenants), on every page.
function showPaused(q) {
  const el = $('#paused-banner');
  const tenants = q.paused_tenants || [];
  const parts = [];
  if (q.paused) parts.push('The queue is paused: jobs already running finish, nothing new starts until it is resumed (stratq resume).');
  if (tenants.length) parts.push(`Paused tenant${tenants.length > 1 ? 's' : ''}: ${tenants.join(', ')}.`);
  if (parts.length) parts.push(`${fmtNum(q.held ?? 0)} job${q.held === 1 ? '' : 's'} held.`);
  el.textContent = parts.join(' ');
  el.hidden = !parts.length;
  el.dataset.paused = q.paused ? 'queue' : tenants.length ? 'tenants' : 'no';
}

let sampleTimer = null;
async function sampleQueue() {
  clearTimeout(sampleTimer);
  try {
    const q = await api('/v1/queue');
    stats.queue = q;
    showPaused(q);
    stats.samples.push({ t: Date.now(), pending: q.pending, processing: q.processing, scheduled: q.scheduled });
    while (stats.samples.length && stats.samples[0].t < Date.now() - WINDOW_MS) stats.samples.shift();
    for (const fn of statsListeners) fn();
  } catch {
    // shown as stale numbers; retried below
  }
  sampleTimer = setTimeout(sampleQueue, 2000);
}

let sampleSoon = null;
onJobEvent((ev) => {
  stats.recent.unshift(ev);
  stats.recent.length = Math.min(stats.recent.length, 12);
  if (TERMINAL.has(ev.status)) countFinished(ev.status, ev.at);
  clearTimeout(sampleSoon);
  sampleSoon = setTimeout(sampleQueue, 200);
  for (const fn of statsListeners) fn();
});

// The throughput chart starts from the jobs that finished in the last ten
// minutes, as the listing has them.
async function seedFinished() {
  try {
    const { jobs } = await api('/v1/jobs?limit=500');
    for (const j of jobs) {
      if (TERMINAL.has(j.status) && j.finished_ms && j.finished_ms > Date.now() - WINDOW_MS) countFinished(j.status, j.finished_ms);
    }
  } catch {
    // the chart fills from live events
  }
}

// --- Pages -------------------------------------------------------------------

function pageHead(title, sub, ...right) {
  return h('div', { class: 'page-head' }, h('div', null, h('h1', null, title), sub ? h('div', { class: 'sub' }, sub) : null), h('div', { class: 'btns' }, right));
}

function errorPanel(e) {
  return h('div', { class: 'panel' }, h('h2', null, e.status === 404 ? 'Not found' : 'Could not load'), h('p', { class: 'muted' }, e.message));
}

async function doCancel(id, btn) {
  if (btn) btn.disabled = true;
  try {
    const r = await api(`/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
    toast(`Job ${shortId(id)}: ${r.status}`);
  } catch (e) {
    toast(e.message, true);
  } finally {
    if (btn) btn.disabled = false;
    refresh();
  }
}

async function doRetry(id, btn) {
  if (btn) btn.disabled = true;
  try {
    const r = await api(`/v1/jobs/${encodeURIComponent(id)}/retry`, { method: 'POST' });
    toast(`Job ${shortId(id)} queued again (attempt ${r.attempts + 1})`);
  } catch (e) {
    toast(e.message, true);
  } finally {
    if (btn) btn.disabled = false;
    refresh();
  }
}

function actionButtons(job) {
  const out = [];
  if (CANCELLABLE.has(job.status)) {
    const b = h('button', { class: 'small danger', 'data-action': 'cancel', onclick: () => doCancel(job.id, b) }, 'Cancel');
    out.push(b);
  }
  if (RETRYABLE.has(job.status)) {
    const b = h('button', { class: 'small', 'data-action': 'retry', onclick: () => doRetry(job.id, b) }, 'Retry');
    out.push(b);
  }
  return out;
}

// Overview ---------------------------------------------------------------------

function overviewPage(root) {
  const okLabel = [...SUCCEEDED].map(statusLabel).join(', ');
  const card = (key, label, hint) => h('div', { class: 'card', dataset: { card: key }, title: meaningOf(key) || null }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, '–'), h('div', { class: 'hint' }, hint || '\u00a0'));
  const cards = h('div', { class: 'cards' },
    card('pending', 'Pending', 'in the queue'), card('processing', 'Processing', 'taken by workers'),
    card('held', 'Held', 'cap or pause'), card('scheduled', 'Scheduled', 'delayed, retries'),
    card('backlog', 'Backlog', 'not started'), card('dead', 'Dead', 'gave up'),
    card('workers', 'Workers', 'live'), card('finished', 'Finished', 'last 10 min'));
  const qCanvas = h('canvas', { class: 'chart', id: 'queue-chart' });
  const tCanvas = h('canvas', { class: 'chart', id: 'throughput-chart' });
  const events = h('ul', { class: 'events-list', id: 'events' });
  root.append(
    pageHead('Overview', null),
    cards,
    h('div', { class: 'grid2' },
      h('div', { class: 'panel' }, h('h2', null, 'Queue length'), qCanvas,
        h('div', { class: 'legend' }, h('span', null, 'pending'), h('span', { class: 'c2' }, 'processing'))),
      h('div', { class: 'panel' }, h('h2', null, 'Throughput (jobs finished per 10 s)'), tCanvas,
        h('div', { class: 'legend' }, h('span', null, okLabel), h('span', { class: 'c3' }, 'other statuses')))),
    h('div', { class: 'panel' }, h('h2', null, 'Recent events'), events));

  const setCard = (key, value, hint) => {
    const c = $(`[data-card="${key}"]`, cards);
    $('.value', c).textContent = value;
    if (hint != null) $('.hint', c).textContent = hint;
  };
  const draw = () => {
    const q = stats.queue;
    if (q) for (const k of ['pending', 'processing', 'held', 'scheduled', 'backlog', 'dead', 'workers']) setCard(k, fmtNum(q[k] ?? 0));
    $('[data-card="dead"]', cards).classList.toggle('bad', !!(q && q.dead));
    let ok = 0, bad = 0;
    for (const v of stats.buckets.values()) (ok += v.ok), (bad += v.bad);
    setCard('finished', fmtNum(ok + bad), bad ? `last 10 min · ${bad} unsuccessful` : 'last 10 min');
    const s = stats.samples;
    const hm = (t) => fmtTime(t).slice(-8, -3);
    lineChart(qCanvas, {
      name: 'Queue length', xs: s.map((x) => x.t), xLabel: (t) => fmtTime(t).slice(-8), zero: true, emptyText: 'waiting for the first sample…',
      series: [{ values: s.map((x) => x.pending), color: '--chart-1', label: 'pending' },
        { values: s.map((x) => x.processing), color: '--chart-2', label: 'processing' }],
    });
    const now = Math.floor(Date.now() / BUCKET_MS) * BUCKET_MS;
    const xs = [];
    for (let b = now - WINDOW_MS + BUCKET_MS; b <= now; b += BUCKET_MS) xs.push(b);
    barChart(tCanvas, {
      name: 'Jobs finished per 10 s', xs, xLabel: hm, tipLabel: (b) => `${fmtTime(b).slice(-8)} to ${fmtTime(b + BUCKET_MS).slice(-8)}`,
      stacks: [{ values: xs.map((b) => stats.buckets.get(b)?.ok || 0), color: '--chart-1', label: okLabel },
        { values: xs.map((b) => stats.buckets.get(b)?.bad || 0), color: '--chart-3', label: 'other statuses' }],
    });
    events.replaceChildren(...(stats.recent.length ? stats.recent.map((ev) => h('li', null,
      h('span', { class: 'when' }, fmtTime(ev.at).slice(-8)), badge(ev.status), jobLink(ev.id),
      ev.worker ? h('span', { class: 'muted small hide-sm' }, `on ${ev.worker}`) : null,
      ev.attempt ? h('span', { class: 'muted small hide-sm' }, `attempt ${ev.attempt}`) : null))
      : [h('li', { class: 'muted' }, 'No events since this page was opened; they appear here as jobs move.')]));
  };
  statsListeners.add(draw);
  draw();
  const tick = setInterval(draw, 5000); // slides the throughput window
  return { redraw: draw, cleanup: () => (statsListeners.delete(draw), clearInterval(tick)) };
}

// Workers ----------------------------------------------------------------------

function workersPage(root) {
  const list = h('div', { class: 'workers', id: 'workers' });
  const sub = h('span', null, 'Loading…');
  root.append(pageHead('Workers', sub), list);
  const load = async () => {
    try {
      const { workers } = await api('/v1/workers');
      sub.textContent = `${workers.length} live worker${workers.length === 1 ? '' : 's'}`;
      list.replaceChildren(...(workers.length ? workers.map(workerCard) : [h('div', { class: 'panel empty' }, 'No live worker. Start one with `stratq worker`.')]));
    } catch (e) {
      list.replaceChildren(errorPanel(e));
    }
  };
  load();
  const t = setInterval(load, 3000);
  return { reload: load, cleanup: () => clearInterval(t) };
}

function workerCard(w) {
  const layers = Object.entries(w.sandbox || {});
  const active = layers.filter(([, v]) => v === 'active').length;
  return h('div', { class: 'panel', dataset: { worker: w.id } },
    h('div', { class: 'worker-head' }, h('strong', { class: 'mono' }, w.id), badge(w.state)),
    h('dl', { class: 'kv' },
      h('dt', null, 'Current job'), h('dd', null, w.current_job ? jobLink(w.current_job) : h('span', { class: 'muted' }, 'none')),
      h('dt', null, 'Host / pid'), h('dd', null, `${w.host ?? '–'} / ${w.pid ?? '–'}`),
      h('dt', null, 'Jobs'), h('dd', null, `${fmtNum(w.jobs_done ?? 0)} done, ${fmtNum(w.jobs_failed ?? 0)} failed`),
      h('dt', null, 'Up'), h('dd', null, w.started_ms ? fmtDur(Date.now() - w.started_ms) : '–'),
      h('dt', null, 'Heartbeat'), h('dd', null, timeCell(w.last_heartbeat_ms)),
      h('dt', null, 'Version'), h('dd', null, w.version ?? '–'),
      h('dt', null, 'Sandbox'), h('dd', null,
        h('div', { class: 'small muted' }, `${active} of ${layers.length} layers active`),
        h('div', { class: 'chips' }, layers.map(([k, v]) => h('span', { class: `badge ${v === 'active' ? 'active' : ''}`, title: v }, k))))));
}

// Jobs -------------------------------------------------------------------------

// A tenant's name links to the jobs page filtered by it.
const TENANT_RE = /^[A-Za-z0-9._-]{1,64}$/;
const tenantLink = (t) => (t && TENANT_RE.test(t) ? h('a', { href: `#/jobs?tenant=${t}`, dataset: { tenant: t } }, t) : '–');

function jobsTable(jobs, { empty }) {
  if (!jobs.length) return h('div', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', { id: 'jobs-table' },
    h('thead', null, h('tr', null, h('th', null, 'Job'), h('th', null, 'Status'), h('th', { class: 'hide-sm' }, 'Tenant'),
      h('th', { class: 'hide-sm' }, 'Attempts'),
      h('th', null, 'Created'), h('th', { class: 'hide-sm' }, 'Run time'), h('th', { class: 'hide-sm' }, 'Worker'), h('th', null, ''))),
    h('tbody', null, jobs.map((j) => h('tr', { dataset: { job: j.id, status: j.status } },
      h('td', null, jobLink(j.id)), h('td', null, badge(j.status)), h('td', { class: 'tenant hide-sm' }, tenantLink(j.tenant)),
      h('td', { class: 'num hide-sm' }, j.attempts ?? 0),
      h('td', null, timeCell(j.created_ms)),
      h('td', { class: 'hide-sm' }, j.started_ms ? fmtDur((j.finished_ms || Date.now()) - j.started_ms) : '–'),
      h('td', { class: 'mono small hide-sm' }, j.worker || '–'),
      h('td', { class: 'actions' }, h('div', { class: 'btns' }, actionButtons(j))))))));
}

// The jobs page's route for a status and a tenant ('all', '': no filter).
function jobsHash(status, tenant) {
  const q = new URLSearchParams();
  if (status !== 'all') q.set('status', status);
  if (tenant) q.set('tenant', tenant);
  const qs = q.toString();
  return `#/jobs${qs ? `?${qs}` : ''}`;
}

// The tenant filter: every tenant GET /v1/tenants knows (and the one
// shown, should it know none), after "all tenants"; choosing one goes to
// its route. refresh() reads the tenants again (not while the list has the
// focus: its options would change under the user).
function tenantSelect(status, tenant) {
  const sel = h('select', { id: 'tenant-filter', 'aria-label': 'Tenant',
    onchange: () => { location.hash = jobsHash(status, sel.value); } });
  let known = '';
  const fill = (names) => {
    const all = [...new Set([...names, ...(tenant ? [tenant] : [])])].sort();
    if (all.join('\n') === known) return;
    known = all.join('\n');
    sel.replaceChildren(h('option', { value: '' }, 'all tenants'), ...all.map((t) => h('option', { value: t }, t)));
    sel.value = tenant;
  };
  const refresh = () => document.activeElement === sel ? null
    : api('/v1/tenants').then((r) => fill(r.tenants.map((t) => t.tenant))).catch(() => {});
  fill([]);
  return { el: h('label', { class: 'tenant-filter' }, 'Tenant ', sel), refresh };
}

function jobsPage(root, query) {
  const status = STATUSES.includes(query.get('status')) ? query.get('status') : 'all';
  const tenant = TENANT_RE.test(query.get('tenant') || '') ? query.get('tenant') : '';
  const filters = h('div', { class: 'filters', id: 'filters' }, STATUSES.map((s) =>
    h('a', { href: jobsHash(s, tenant), class: s === status ? 'active' : null, title: meaningOf(s) || null }, statusLabel(s))));
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const more = h('div', { class: 'more' });
  const what = `${status === 'all' ? 'Recent jobs' : `Jobs ${statusLabel(status)}`}${tenant ? ` of tenant ${tenant}` : ''}, newest first`;
  const tenants = tenantSelect(status, tenant);
  root.append(pageHead('Jobs', what, tenants.el), filters, h('div', { class: 'panel' }, body, more));
  let jobs = [], cursor = null, pages = 1;
  const render = () => {
    body.replaceChildren(jobsTable(jobs, { empty: 'No jobs here.' }));
    more.replaceChildren(cursor ? h('button', { onclick: loadMore }, 'Load more') : '');
  };
  const base = `/v1/jobs?limit=50${status === 'all' ? '' : `&status=${status}`}${tenant ? `&tenant=${encodeURIComponent(tenant)}` : ''}`;
  const load = async () => {
    try {
      let all = [], c = null;
      for (let i = 0; i < pages; i++) {
        const r = await api(base + (c ? `&cursor=${encodeURIComponent(c)}` : ''));
        all = all.concat(r.jobs);
        c = r.next_cursor;
        if (!c) break;
      }
      jobs = all;
      cursor = c;
      render();
    } catch (e) {
      body.replaceChildren(errorPanel(e));
    }
  };
  async function loadMore() {
    pages++;
    await load();
  }
  load();
  tenants.refresh();
  const t = setInterval(() => (load(), tenants.refresh()), 5000);
  return { reload: load, onEvent: debounce(load, 250), cleanup: () => clearInterval(t) };
}

function failedPage(root) {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const sub = h('span', null, 'Jobs that ended without success, newest first');
  const retryAll = h('button', { class: 'small', id: 'retry-all', onclick: async () => {
    retryAll.disabled = true;
    for (const j of shown) await doRetry(j.id, null);
    retryAll.disabled = false;
  } }, 'Retry all shown');
  root.append(pageHead('Failed and dead jobs', sub, retryAll), h('div', { class: 'panel' }, body));
  let shown = [];
  const load = async () => {
    try {
      const lists = await Promise.all(FAILED.map((s) => api(`/v1/jobs?status=${s}&limit=100`)));
      shown = lists.flatMap((r) => r.jobs).sort((a, b) => (b.finished_ms || b.created_ms || 0) - (a.finished_ms || a.created_ms || 0)).slice(0, 200);
      retryAll.disabled = !shown.length;
      body.replaceChildren(jobsTable(shown, { empty: 'No failed or dead jobs. Everything succeeded.' }));
    } catch (e) {
      body.replaceChildren(errorPanel(e));
    }
  };
  load();
  const t = setInterval(load, 5000);
  return { reload: load, onEvent: debounce(load, 250), cleanup: () => clearInterval(t) };
}

// Job detail -------------------------------------------------------------------

const capitalized = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function timelineOf(j) {
  const steps = [];
  if (j.created_ms) steps.push({ t: j.created_ms, what: 'Submitted' });
  if (j.retried_ms) steps.push({ t: j.retried_ms, what: 'Queued again (retry)' });
  if (j.started_ms) steps.push({ t: j.started_ms, what: `Started, attempt ${j.attempts ?? 1}${j.worker ? ` on ${j.worker}` : ''}` });
  if (j.cancel_requested_ms) steps.push({ t: j.cancel_requested_ms, what: 'Cancel requested' });
  // next_run_ms is there while the job waits to run again (promote.lua drops it).
  if (j.next_run_ms && !TERMINAL.has(j.status)) steps.push({ t: j.next_run_ms, what: `Runs again (last run: ${j.last_status || '?'})`, future: true });
  if (j.finished_ms && TERMINAL.has(j.status)) steps.push({ t: j.finished_ms, what: `Finished: ${statusLabel(j.status)}`, cls: SUCCEEDED.has(j.status) ? 'ok' : 'bad' });
  else if (!TERMINAL.has(j.status)) steps.push({ t: null, what: `${capitalized(statusLabel(j.status))}…` });
  steps.sort((a, b) => (a.t ?? Infinity) - (b.t ?? Infinity));
  return h('ol', { class: 'timeline', id: 'timeline' }, steps.map((s) => h('li', { class: s.cls || null },
    h('div', null, s.what), h('div', { class: 'when' }, s.t ? `${fmtTime(s.t)}${steps[0].t && s.t !== steps[0].t ? ` · +${fmtDur(s.t - steps[0].t)}` : ''}` : 'now'))));
}

const METRIC_LABELS = {
  total_return: ['Total return', 'pct'], cagr: ['CAGR', 'pct'], annual_volatility: ['Volatility', 'pct'],
  sharpe: ['Sharpe', 'num'], sortino: ['Sortino', 'num'], max_drawdown: ['Max drawdown', 'pct'],
  max_drawdown_duration: ['Max DD duration', 'int'], win_rate: ['Win rate', 'pct'], turnover: ['Turnover', 'num'],
  n_periods: ['Periods', 'int'],
};

function fmtMetric(v, kind) {
  if (v == null) return '–';
  if (typeof v !== 'number') return String(v);
  if (kind === 'pct') return `${(v * 100).toFixed(2)}%`;
  if (kind === 'int') return String(v);
  return String(+v.toFixed(3));
}

function resultSection(j) {
  const r = j.result;
  if (r && typeof r === 'object' && r.stratq_result) {
    const metrics = Object.entries(r.metrics || {});
    const canvas = h('canvas', { class: 'chart tall', id: 'equity-chart' });
    const eq = r.equity;
    const draw = () => {
      if (!eq || !Array.isArray(eq.v)) return;
      const xs = eq.v.map((_, i) => i);
      lineChart(canvas, { name: 'Equity curve', xs, series: [{ values: eq.v, color: '--chart-1', label: 'equity' }], area: true, xLabel: (_, i) => String(eq.t?.[i] ?? i).slice(0, 10) });
    };
    const panel = h('div', { class: 'panel', id: 'result' }, h('h2', null, 'Result'),
      metrics.length ? h('div', { class: 'metrics' }, metrics.map(([k, v]) => h('div', null,
        h('div', { class: 'label' }, METRIC_LABELS[k]?.[0] || k), h('div', { class: 'value' }, fmtMetric(v, METRIC_LABELS[k]?.[1]))))) : null,
      eq && Array.isArray(eq.v) && eq.v.length ? [h('h2', null, `Equity curve`, h('span', { class: 'muted small' },
        ` · ${eq.v.length}${eq.n && eq.n > eq.v.length ? ` of ${eq.n}` : ''} points, ${fmtNum(eq.v[0])} → ${fmtNum(eq.v[eq.v.length - 1])}`)), canvas] : null,
      h('p', { class: 'muted small' }, `${r.n_trades ?? 0} trades${r.extra && Object.keys(r.extra).length ? ` · ${JSON.stringify(r.extra)}` : ''}`));
    return { el: panel, draw };
  }
  return { el: h('div', { class: 'panel', id: 'result' }, h('h2', null, 'Result'), h('pre', { class: 'wrap' }, JSON.stringify(r, null, 2))), draw: () => {} };
}

function jobPage(root, id) {
  const head = h('div');
  const progress = h('div');
  const summary = h('div', { class: 'grid2' });
  const errorBox = h('div');
  const result = h('div');
  const outPre = h('pre', { id: 'output' });
  const logList = h('pre', { class: 'wrap', id: 'log-lines' });
  let tab = 'stdout';
  const tabs = h('div', { class: 'tabs' });
  const output = h('div', { class: 'panel' }, h('h2', null, 'Output'), tabs, outPre);
  const spec = h('div');
  root.append(head, progress, summary, errorBox, result, output, spec);

  let job = null, resultKey = null, drawResult = () => {}, specShown = false;
  const logs = { stdout: '', stderr: '', log: [], so: 0, se: 0, lo: 0, attempts: null };

  const renderOutput = () => {
    const counts = { stdout: logs.stdout.length, stderr: logs.stderr.length, log: logs.log.length };
    tabs.replaceChildren(...['stdout', 'stderr', 'log'].map((k) => h('button', { class: tab === k ? 'active' : null, onclick: () => ((tab = k), renderOutput()) },
      `${k}${counts[k] ? ` (${k === 'log' ? counts[k] : fmtNum(counts[k]) + ' B'})` : ''}`)));
    const text = tab === 'log'
      ? logs.log.map((l) => `${fmtTime(l.ts_ms)}  ${l.msg}${l.fields && Object.keys(l.fields).length ? '  ' + JSON.stringify(l.fields) : ''}`).join('\n')
      : logs[tab];
    const pre = outPre;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    if (pre.textContent !== (text || '')) {
      pre.textContent = text || '';
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    if (!text) pre.textContent = tab === 'log' ? '(no ctx.log lines)' : `(nothing on ${tab})`;
  };

  const loadLogs = async () => {
    if (job && logs.attempts !== job.attempts && !TERMINAL.has(job.status)) {
      Object.assign(logs, { stdout: '', stderr: '', log: [], so: 0, se: 0, lo: 0 });
    }
    logs.attempts = job?.attempts;
    const r = await api(`/v1/jobs/${encodeURIComponent(id)}/logs?stdout_offset=${logs.so}&stderr_offset=${logs.se}&log_offset=${logs.lo}`);
    logs.stdout += r.stdout || '';
    logs.stderr += r.stderr || '';
    logs.log = logs.log.concat(r.log || []);
    logs.so = r.stdout_offset;
    logs.se = r.stderr_offset;
    logs.lo = r.log_offset;
  };

  const render = () => {
    const j = job;
    head.replaceChildren(h('div', { class: 'crumbs' }, h('a', { href: '#/jobs' }, 'Jobs'), ' / job'),
      pageHead(h('span', { class: 'mono job-id' }, j.id), h('span', null, badge(j.status), ' ', j.error ? `${j.error.type}: ${j.error.message}`.slice(0, 140) : ''),
      ...actionButtons(j).map((b) => (b.classList.remove('small'), b))));
    if (!TERMINAL.has(j.status)) {
      const f = j.progress?.fraction;
      const bar = h('div');
      bar.style.width = `${Math.round(Math.max(0, Math.min(1, f ?? 0)) * 100)}%`;
      progress.replaceChildren(h('div', { class: 'panel', id: 'progress' },
        h('div', { class: 'progress-label' }, h('span', null, j.progress?.message || capitalized(statusLabel(j.status))),
          h('span', null, f != null ? `${Math.round(f * 100)}%` : '')),
        h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': f != null ? String(Math.round(f * 100)) : null }, bar)));
    } else {
      progress.replaceChildren();
    }
    const u = j.usage;
    summary.replaceChildren(
      h('div', { class: 'panel' }, h('h2', null, 'Summary'), h('dl', { class: 'kv' },
        h('dt', null, 'Status'), h('dd', null, badge(j.status)),
        h('dt', null, 'Attempts'), h('dd', null, `${j.attempts ?? 0} of ${j.spec?.max_attempts ?? 1}`),
        h('dt', null, 'Tenant'), h('dd', { id: 'job-tenant' }, tenantLink(j.tenant), j.priority != null ? h('span', { class: 'muted' }, ` · priority ${j.priority}`) : null),
        h('dt', null, 'Worker'), h('dd', { class: 'mono' }, j.worker || '–'),
        h('dt', null, 'Queue wait'), h('dd', null, j.started_ms && j.created_ms ? fmtDur(j.started_ms - j.created_ms) : '–'),
        h('dt', null, 'Run time'), h('dd', null, j.started_ms ? fmtDur((j.finished_ms || Date.now()) - j.started_ms) : '–'),
        h('dt', null, 'Usage'), h('dd', null, u ? `${fmtDur(u.wall_ms)} wall, ${fmtDur(u.cpu_ms)} CPU, ${fmtNum(u.max_rss_kb / 1024)} MiB max RSS` : '–'),
        j.dead_reason ? [h('dt', null, 'Dead because'), h('dd', null, j.dead_reason)] : null)),
      h('div', { class: 'panel' }, h('h2', null, 'Timeline'), timelineOf(j)));
    errorBox.replaceChildren(j.error ? h('div', { class: 'panel', id: 'error' }, h('h2', null, `Error: ${j.error.type}`),
      h('p', null, j.error.message), j.error.traceback ? h('pre', { class: 'error' }, j.error.traceback) : null) : '');
    const key = SUCCEEDED.has(j.status) ? `${j.attempts}:${j.finished_ms}` : null;
    if (key !== resultKey) {
      resultKey = key;
      if (key) {
        const r = resultSection(j);
        result.replaceChildren(r.el);
        drawResult = r.draw;
        drawResult();
      } else {
        result.replaceChildren();
        drawResult = () => {};
      }
    }
    if (!specShown && j.spec) {
      specShown = true;
      const { code, ...rest } = j.spec;
      if (typeof rest.data_csv === 'string') {
        const lines = rest.data_csv.split('\n').filter(Boolean);
        rest.data_csv = `(CSV, ${lines.length - 1} rows of ${lines[0]})`;
      }
      spec.replaceChildren(h('div', { class: 'panel', id: 'spec' }, h('h2', null, 'Spec'),
        h('pre', { class: 'code' }, code || ''), h('h2', { class: 'spec-rest' }, 'Parameters and limits'),
        h('pre', { class: 'wrap' }, JSON.stringify(rest, null, 2))));
    }
    renderOutput();
  };

  let timer = null, stopped = false, busy = false;
  const load = async () => {
    if (busy || stopped) return;
    busy = true;
    clearTimeout(timer);
    try {
      job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
      await loadLogs();
      if (TERMINAL.has(job.status)) {
        // The record has the whole of each stream once it is final.
        logs.stdout = job.stdout ?? logs.stdout;
        logs.stderr = job.stderr ?? logs.stderr;
      }
      if (!stopped) render();
    } catch (e) {
      if (!stopped && !job) root.replaceChildren(errorPanel(e));
    } finally {
      busy = false;
      if (!stopped) timer = setTimeout(load, job && TERMINAL.has(job.status) ? 5000 : 700);
    }
  };
  load();
  return {
    reload: load,
    redraw: () => drawResult(),
    onEvent: (ev) => ev.id === id && load(),
    cleanup: () => ((stopped = true), clearTimeout(timer)),
  };
}

// --- Router --------------------------------------------------------------------

function debounce(fn, ms) {
  let t = null;
  return () => (clearTimeout(t), (t = setTimeout(fn, ms)));
}

let current = null;

function refresh() {
  current?.reload?.();
}

function route() {
  current?.cleanup?.();
  current = null;
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = hash.split('?');
  const query = new URLSearchParams(qs || '');
  const root = $('#main');
  root.replaceChildren();
  $('#toasts').replaceChildren();
  let page = 'overview';
  let m;
  if (path === '/workers') (page = 'workers'), (current = workersPage(root));
  else if ((m = path.match(/^\/jobs\/([A-Za-z0-9_-]{1,64})$/))) (page = 'jobs'), (current = jobPage(root, m[1]));
  else if (path === '/jobs') (page = 'jobs'), (current = jobsPage(root, query));
  else if (path === '/failed') (page = 'failed'), (current = failedPage(root));
  else current = overviewPage(root);
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === page);
  document.title = `stratq · ${page}`;
  window.scrollTo(0, 0);
}

async function start() {
  for (let backoff = 1000; ; backoff = Math.min(backoff * 2, 10000)) {
    try {
      await loadStatuses();
      break;
    } catch (e) {
      $('#main').replaceChildren(errorPanel(e));
      await new Promise((r) => setTimeout(r, backoff));
    }
  }
  onJobEvent((ev) => current?.onEvent?.(ev));
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', debounce(() => current?.redraw?.(), 150));
  route();
  await seedFinished();
  sampleQueue();
  streamEvents();
}

start();
