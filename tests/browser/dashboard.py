"""The dashboard in a real browser: Debian's headless Chromium driven over the
DevTools protocol (cdp.py). run.py starts the stack and calls ``run``.

Auth is on, so the page first asks for the token. Every wait has a deadline;
any failed check, page error, failed request or console error fails the run.
Screenshots of each page go to ``shots`` (docs/img).
"""

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cdp import DEADLINE, Chromium, CDP, Page

VIEWPORT = (1280, 860)
PHONE = (390, 844)

QUICK = "import time\ndef run(ctx):\n    time.sleep(0.4)\n    return {}\n"
FAILING = 'def run(ctx):\n    ctx.log("about to fail", step=1)\n    raise ValueError("no edge today")\n'
SLOW = ('import time\ndef run(ctx):\n    for i in range(600):\n        ctx.progress(i / 600, f"step {i} of 600")\n'
        '        print("step", i, flush=True)\n        time.sleep(0.1)\n    return "done"\n')

# The share of the equity chart's pixels that are drawn on.
INKED = """(c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n / (c.width * c.height);
}"""


class Failed(AssertionError):
    pass


def check(ok, message):
    if not ok:
        raise Failed(message)


class Api:
    """The stratq HTTP API, with the token (never through a proxy)."""

    def __init__(self, url, token):
        self.url, self.token = url, token
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __call__(self, method, path, body=None):
        req = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with self.opener.open(req, timeout=DEADLINE) as res:
                status, raw = res.status, res.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        check(status < 300, f"{method} {path} -> {status} {json.dumps(doc)}")
        return doc


class Problems:
    """What the page reports that a user would see as broken: console errors,
    uncaught exceptions, failed requests."""

    def __init__(self, page):
        self.errors = []
        self.expect401 = True  # until the token is given, the first calls answer 401
        self.urls = {}
        page.on("Runtime.consoleAPICalled", self._console)
        page.on("Log.entryAdded", self._log)
        page.on("Runtime.exceptionThrown", self._exception)
        page.on("Network.requestWillBeSent", self._request)
        page.on("Network.loadingFailed", self._failed)

    def _console_error(self, text, url):
        if self.expect401 and "status of 401" in text:
            return
        self.errors.append(f"console: {text} ({url})")

    def _console(self, p):
        if p["type"] == "error":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            frames = p.get("stackTrace", {}).get("callFrames") or [{}]
            self._console_error(text, frames[0].get("url", ""))

    def _log(self, p):
        e = p["entry"]  # e.g. "Failed to load resource: ... status of 401"
        if e["level"] == "error" and e.get("source") != "worker":
            self._console_error(e["text"], e.get("url", ""))

    def _exception(self, p):
        d = p["exceptionDetails"]
        self.errors.append(f"page error: {d.get('exception', {}).get('description') or d.get('text')}")

    def _request(self, p):
        self.urls[p["requestId"]] = p["request"]["url"]

    def _failed(self, p):
        url = self.urls.get(p["requestId"], "?")
        # A stream aborted by the browser itself is not an error.
        if not url.endswith("/v1/events"):
            self.errors.append(f"request failed: {url} {p.get('errorText')}")


def checks(page, problems, api, url, token, shots, examples, step):
    wait_js, wait_selector = page.wait_js, page.wait_selector

    def until(what, fn, timeout=DEADLINE):
        return page.wait(what, fn, timeout)

    def shot(name, full_page=False):
        page.screenshot(shots / name, full_page)

    backtest = {
        "code": (examples / "ma_crossover.py").read_text(),
        "data_csv": (examples / "data" / "prices.csv").read_text(),
        "params": {"fast": 20, "slow": 50},
    }

    # 1. The static files need no token; the page asks for one.
    step("overview: token prompt")
    resp = page.goto(url + "/")
    check(resp["status"] == 200, f"GET / -> {resp['status']}")
    csp = resp["headers"].get("content-security-policy", "")
    check("default-src 'self'" in csp, f"no strict CSP on /: {csp}")
    wait_selector("#token-dialog[open]")
    page.fill("#token-input", token)
    page.click("document.querySelector('#token-form button[type=submit]')", "the token form's submit button")
    wait_js("!document.querySelector('#token-dialog').open")
    problems.expect401 = False

    # Live numbers: the events stream is connected, the cards show the queue.
    step("overview: live numbers")
    wait_selector('#live[data-state="on"]')
    wait_js("document.querySelector('[data-card=\"workers\"] .value')?.textContent === '2'")
    for card in ("held", "backlog"):
        wait_js(f"/^[0-9]+$/.test(document.querySelector('[data-card=\"{card}\"] .value')?.textContent)")
    wait_selector('[data-card="finished"] .value')
    finished_before = page.evaluate("Number(document.querySelector('[data-card=\"finished\"] .value').textContent)")
    batch = api("POST", "/v1/jobs/batch", {"jobs": [{"code": QUICK.format(i)} for i in range(12)]})
    batch_ids = [j["id"] for j in batch["jobs"]]
    wait_js("(n) => Number(document.querySelector('[data-card=\"finished\"] .value')?.textContent) >= n",
            finished_before + len(batch_ids), timeout=30)
    wait_js("document.querySelectorAll('#events li .badge').length >= 5")
    wait_js("Number(document.querySelector('#queue-chart')?.dataset.points) >= 3")

    # 2. A submitted job appears in the list and moves to succeeded.
    step("jobs: a submitted job appears and succeeds")
    bt_id = api("POST", "/v1/jobs", backtest)["id"]
    page.goto(url + "/#/jobs")
    wait_selector(f'tr[data-job="{bt_id}"]')
    wait_selector(f'tr[data-job="{bt_id}"][data-status="succeeded"]', timeout=30)

    # Failed ones for the list and the failed page.
    fail_id = api("POST", "/v1/jobs", {"code": FAILING})["id"]
    until("the failing job to fail", lambda: api("GET", f"/v1/jobs/{fail_id}")["status"] == "failed")
    wait_selector(f'tr[data-job="{fail_id}"][data-status="failed"]')
    shot("jobs.png")
    page.click("[...document.querySelectorAll('#filters a')].find((a) => a.textContent.trim() === 'succeeded')",
               "the 'succeeded' filter")
    # The hash changes at once, the page follows on the hashchange event:
    # wait for the filtered page itself, not the old list still showing.
    wait_js("location.hash === '#/jobs?status=succeeded'"
            " && document.querySelector('#filters a.active')?.textContent === 'succeeded'")
    wait_selector(f'tr[data-job="{bt_id}"]')
    check(not page.count(f'tr[data-job="{fail_id}"]'), "the status filter shows a failed job")
    # The filters are the server's statuses (GET /v1/statuses), after "all".
    names = [s["name"] for s in api("GET", "/v1/statuses")["statuses"]]
    shown = page.evaluate("[...document.querySelectorAll('#filters a')].map((a) => a.textContent)")
    check(shown == ["all"] + [n.replace("_", " ") for n in names], f"status filters {shown}, statuses {names}")

    # Each job's tenant, and the tenant filter (filled from GET /v1/tenants)
    # that lists one tenant's jobs (GET /v1/jobs?tenant=).
    step("jobs: tenants")
    page.goto(url + "/#/jobs")
    tenant_ids = {t: api("POST", "/v1/jobs", {"code": QUICK, "tenant": t})["id"] for t in ("alice", "bob")}
    for t, job_id in tenant_ids.items():
        wait_selector(f'tr[data-job="{job_id}"] td.tenant a[data-tenant="{t}"]')
    check(page.evaluate(f"document.querySelector('tr[data-job=\"{bt_id}\"] td.tenant').textContent") == "default",
          "the backtest's tenant is not 'default'")
    # The list of tenants follows (a slow poll) the ones that appear.
    wait_js("['alice', 'bob', 'default'].every((t) =>"
            " [...document.querySelectorAll('#tenant-filter option')].some((o) => o.value === t))")
    page.evaluate("(() => { const s = document.querySelector('#tenant-filter'); s.value = 'alice';"
                  " s.dispatchEvent(new Event('change')); })()")
    wait_js("location.hash === '#/jobs?tenant=alice' && document.querySelector('#tenant-filter')?.value === 'alice'")
    wait_selector(f'tr[data-job="{tenant_ids["alice"]}"]')
    check(page.count("#jobs-table tbody tr") == 1, "the tenant filter shows other tenants' jobs")
    # A status filter keeps the tenant.
    href = page.evaluate("[...document.querySelectorAll('#filters a')].find((a) => a.textContent === 'succeeded').hash")
    check(href == "#/jobs?status=succeeded&tenant=alice", f"the succeeded filter of tenant alice goes to {href}")
    page.goto(url + "/#/jobs?status=succeeded")
    wait_selector(f'tr[data-job="{bt_id}"]')

    # 3. Its detail page draws the equity curve.
    step("job: equity curve")
    page.click(f"document.querySelector('tr[data-job=\"{bt_id}\"] a')", "the backtest's link")
    wait_js("(id) => location.hash === `#/jobs/${id}`", bt_id)
    wait_selector("#equity-chart")
    points = page.evaluate("Number(document.querySelector('#equity-chart').dataset.points)")
    check(points >= 100, f"equity chart has {points} points")
    inked = page.evaluate(f"({INKED})(document.querySelector('#equity-chart'))")
    check(inked >= 0.05, f"equity chart looks blank ({inked * 100:.1f}% of pixels drawn)")
    wait_selector("#timeline li.ok")
    wait_selector("#spec pre")
    shot("job.png", full_page=True)
    # The values under the pointer are shown; the canvas says what it shows
    # in words (aria-label), for a screen reader.
    page.hover("document.querySelector('#equity-chart')", "the equity chart")
    wait_js("/^[0-9]+$/.test(document.querySelector('#equity-chart').dataset.hover || '')")
    label = page.evaluate("document.querySelector('#equity-chart').getAttribute('aria-label') || ''")
    check(label.startswith("Equity curve: ") and "equity " in label, f"equity chart's aria-label: {label!r}")
    page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 0, "y": 0})  # out of the later screenshots

    # 4. Retry on a failed job works.
    step("failed: retry")
    page.goto(url + "/#/failed")
    wait_selector(f'tr[data-job="{fail_id}"][data-status="failed"]')
    shot("failed.png")
    page.click(f"document.querySelector('tr[data-job=\"{fail_id}\"] button[data-action=\"retry\"]')",
               "the failed job's Retry button")

    def retried():
        j = api("GET", f"/v1/jobs/{fail_id}")
        return j["attempts"] == 2 and j.get("retried_ms") and j["status"] == "failed"

    until("the retried job to run again and end", retried)
    wait_selector(f'tr[data-job="{fail_id}"][data-status="failed"]')

    # 5. Cancel on a running job works; the progress bar shows while it runs.
    step("job: progress and cancel")
    slow_id = api("POST", "/v1/jobs", {"code": SLOW})["id"]
    page.goto(f"{url}/#/jobs/{slow_id}")
    wait_selector('.page-head [data-status="running"]')
    wait_js("Number(document.querySelector('#progress [role=progressbar]')?.getAttribute('aria-valuenow')) >= 3")
    wait_js("(document.querySelector('#output')?.textContent || '').includes('step 2')")
    shot("job-running.png")
    page.click("document.querySelector('.page-head button[data-action=\"cancel\"]')", "the job's Cancel button")
    wait_selector('.page-head [data-status="cancelled"]', timeout=15)
    cancelled = api("GET", f"/v1/jobs/{slow_id}")
    check(cancelled["status"] == "cancelled", f"cancelled job is {cancelled['status']}")
    check(not page.count("#progress"), "progress bar still shown after the job ended")

    # A pause shows as a banner on every page, until the queue is resumed.
    step("paused banner")
    page.goto(url + "/#/")
    api("POST", "/v1/queue/pause")
    wait_js("document.querySelector('#paused-banner')?.dataset.paused === 'queue'", timeout=15)
    wait_selector("#paused-banner")
    check("paused" in page.evaluate("document.querySelector('#paused-banner').textContent"), "banner text")
    # Jobs submitted meanwhile are held: in the backlog, not pending.
    for _ in range(3):
        api("POST", "/v1/jobs", {"code": QUICK, "tenant": "alice"})
    wait_js("document.querySelector('[data-card=\"held\"] .value')?.textContent === '3'"
            " && document.querySelector('[data-card=\"backlog\"] .value')?.textContent === '3'"
            " && document.querySelector('#paused-banner').textContent.includes('3 jobs held')", timeout=15)
    shot("paused.png")
    api("POST", "/v1/queue/resume")
    api("POST", "/v1/queue/pause?tenant=bob")
    wait_js("(() => { const b = document.querySelector('#paused-banner');"
            " return b.dataset.paused === 'tenants' && b.textContent.includes('bob'); })()", timeout=15)
    api("POST", "/v1/queue/resume?tenant=bob")
    wait_js("document.querySelector('#paused-banner').hidden", timeout=15)

    # 6. Workers, with their sandbox layers.
    step("workers")
    page.goto(url + "/#/workers")
    wait_js("document.querySelectorAll('[data-worker]').length === 2")
    wait_selector("[data-worker] .chips .badge")
    shot("workers.png")

    # Overview last, with the activity above on its charts; then on a phone.
    step("overview screenshots")
    page.goto(url + "/#/")
    wait_js("Number(document.querySelector('#queue-chart')?.dataset.points) >= 3")
    wait_selector('#live[data-state="on"]')
    shot("overview.png")
    page.set_viewport(*PHONE)
    wait_js("document.querySelector('#queue-chart')?.clientWidth < 390")
    # The resize redraw (debounced) sizes the canvas to its new box.
    wait_js("(() => { const c = document.querySelector('#queue-chart');"
            " return c && c.width === Math.round(c.clientWidth * devicePixelRatio); })()")
    shot("overview-phone.png", full_page=True)

    # Loaded again and again, more often than Chromium opens connections to
    # one host (6): a page left for the back/forward cache must not keep its
    # event stream, or the next load waits for a free connection for ever.
    step("reloads")
    for visit in range(8):
        page.goto(f"{url}/?visit={visit}#/workers")
        wait_selector('#live[data-state="on"]')
        wait_js("document.querySelectorAll('[data-worker]').length === 2")

    check(not problems.errors, "console errors:\n  " + "\n  ".join(problems.errors))


def run(url, token, shots, examples, chromium, work):
    """Runs every check against the API at url; returns 0 if all passed.
    The browser's profile, log and any failure screenshot go to work."""
    shots, work = Path(shots), Path(work)
    shots.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def step(msg):
        print(f"[{time.monotonic() - t0:.1f} s] {msg}", flush=True)

    browser = Chromium(chromium, work / "chromium-profile", work / "chromium.log")
    cdp = page = problems = None
    try:
        cdp = CDP(browser.start())
        page = Page(cdp, *VIEWPORT)
        problems = Problems(page)
        checks(page, problems, Api(url, token), url, token, shots, Path(examples), step)
        step("all checks passed")
        return 0
    except Exception as e:  # any failure: say what, show the page as it was
        print(f"FAIL: {e}", file=sys.stderr)
        if problems and problems.errors and not str(e).startswith("console errors"):
            print("console errors:\n  " + "\n  ".join(problems.errors), file=sys.stderr)
        if page:
            try:
                page.screenshot(work / "failure.png", full_page=True)
                print(f"screenshot of the failure: {work / 'failure.png'}", file=sys.stderr)
            except Exception:
                pass
        print(f"chromium's log: {browser.log_path}", file=sys.stderr)
        return 1
    finally:
        if cdp:
            cdp.close()
        browser.close()
