#!/usr/bin/python3
"""What the dashboard costs a browser: the figures of docs/dashboard.md's
"The charts", measured in Debian's headless Chromium (cdp.py) against a real
stack (tests/chaos/stack.py: redis-server, the API with auth on, a worker).

For the overview, loaded --runs times with an empty cache ("cold") and again
with a filled one ("warm", every file revalidated by its ETag):
- bytes: the bodies of `/` and the /ui/ files, and what went over the wire;
- first chart: ms from the start of navigation until the throughput chart is
  first drawn, and until the queue chart is drawn with its first sample (a
  MutationObserver, installed before any page script, notes when each
  canvas's data-points is first set);
- script and task time: Chromium's ScriptDuration and TaskDuration for the
  load (its Performance domain), the main thread's work whatever the wait;
- the JS heap in use once the overview is drawn, after a garbage collection.
Then the time to the equity chart of a backtest's page, and the cost of one
redraw: charts.js's lineChart (2 series of 300 points) and barChart (60
stacks of 2) called 300 times each on a canvas of the page's size.

Medians over the runs. A loaded machine moves the times, so compare builds
measured back to back, not against old numbers.

    /usr/bin/python3 tests/browser/measure.py --bin build/stratq [--runs 15] [--json]
"""

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "chaos"))
from stack import Stack  # noqa: E402

from cdp import CDP, Chromium, Page  # noqa: E402
from dashboard import QUICK, Api  # noqa: E402

# Before any page script: the token (so no dialog) and the watcher.
PRELUDE = """
if (location.protocol.startsWith('http')) sessionStorage.setItem('stratq.token', %s);
window.__drawn = {};
new MutationObserver((ms) => {
  for (const m of ms) {
    const c = m.target;
    if (c.id && Number(c.dataset.points) >= 1 && !(c.id in window.__drawn)) window.__drawn[c.id] = performance.now();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-points'] });
"""

FILES = """[performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
  .filter((e) => !e.name.includes('/v1/'))
  .map((e) => [new URL(e.name).pathname, e.encodedBodySize, e.transferSize])"""

REDRAW = """async (n) => {
  const { lineChart, barChart } = await import('/ui/charts.js');
  // A canvas in a box of the overview's chart size (a box of fixed height:
  // what a chart library that sizes its canvas to its parent wants).
  const canvas = () => {
    const box = document.createElement('div'), c = document.createElement('canvas');
    (box.style.position = 'relative'), (box.style.height = '200px');
    c.className = 'chart';
    box.append(c);
    document.querySelector('main').append(box);
    return c;
  };
  const xs = [], a = [], b = [];
  for (let i = 0; i < 300; i++) (xs.push(1e12 + i * 2000), a.push(Math.round(50 + 40 * Math.sin(i / 9))), b.push(i % 7));
  const label = (x) => new Date(x).toTimeString().slice(0, 8);
  const c1 = canvas(), c2 = canvas();
  let t = performance.now();
  for (let k = 0; k < n; k++) {
    (xs.push(xs.shift() + 600000), a.push(a.shift()), b.push(b.shift()));
    lineChart(c1, { xs, xLabel: label, zero: true, series: [{ values: a, color: '--chart-1', label: 'a' },
      { values: b, color: '--chart-2', label: 'b' }] });
  }
  const line = (performance.now() - t) / n;
  const bx = xs.slice(0, 60), ok = a.slice(0, 60), bad = b.slice(0, 60);
  t = performance.now();
  for (let k = 0; k < n; k++) {
    ok.push(ok.shift());
    barChart(c2, { xs: bx, xLabel: label, stacks: [{ values: ok, color: '--chart-1', label: 'a' },
      { values: bad, color: '--chart-3', label: 'b' }] });
  }
  const bar = (performance.now() - t) / n;
  (c1.parentNode.remove(), c2.parentNode.remove());
  return { line, bar };
}"""


def median(xs):
    return round(statistics.median(xs), 1)


def metrics(page):
    return {m["name"]: m["value"] for m in page.send("Performance.getMetrics")["metrics"]}


def leave(page):
    """To about:blank (which has no response for Page.goto to return)."""
    loads = page.loads
    page.send("Page.navigate", {"url": "about:blank"})
    page.wait("about:blank to load", lambda: page.loads > loads)


def overview_loads(page, url, runs):
    first, sampled, script, task = [], [], [], []
    files = None
    for i in range(runs + 1):
        leave(page)
        before = metrics(page)
        page.goto(url + "/")
        drawn = page.wait_js("window.__drawn['throughput-chart'] && window.__drawn['queue-chart'] && window.__drawn")
        after = metrics(page)
        if i == 0:
            continue  # a warm-up; for "warm", the load that fills the cache
        first.append(drawn["throughput-chart"])
        sampled.append(drawn["queue-chart"])
        script.append(1000 * (after["ScriptDuration"] - before["ScriptDuration"]))
        task.append(1000 * (after["TaskDuration"] - before["TaskDuration"]))
        files = page.evaluate(FILES)
    return {
        "body_bytes": sum(f[1] for f in files),
        "wire_bytes": sum(f[2] for f in files),
        "files": {f[0]: f[1] for f in files},
        "first_chart_ms": median(first),
        "first_sample_ms": median(sampled),
        "script_ms": median(script),
        "task_ms": median(task),
    }


def measure(url, token, runs, chromium, work):
    api = Api(url, token)
    examples = REPO / "examples"
    backtest = {"code": (examples / "ma_crossover.py").read_text(),
                "data_csv": (examples / "data" / "prices.csv").read_text(), "params": {"fast": 20, "slow": 50}}
    ids = [j["id"] for j in api("POST", "/v1/jobs/batch", {"jobs": [{"code": QUICK}] * 8})["jobs"]]
    bt = api("POST", "/v1/jobs", backtest)["id"]
    end = time.monotonic() + 60
    while any(api("GET", f"/v1/jobs/{i}")["status"] != "succeeded" for i in [*ids, bt]):
        if time.monotonic() > end:
            raise RuntimeError("the jobs did not succeed within 60 s")
        time.sleep(0.3)

    browser = Chromium(chromium, work / "chromium-profile", work / "chromium.log")
    cdp = None
    try:
        cdp = CDP(browser.start())
        page = Page(cdp, 1280, 860)
        page.send("Performance.enable")
        page.send("Page.addScriptToEvaluateOnNewDocument", {"source": PRELUDE % json.dumps(token)})
        out = {}
        for mode in ("cold", "warm"):
            page.send("Network.setCacheDisabled", {"cacheDisabled": mode == "cold"})
            out[mode] = overview_loads(page, url, runs)
        page.send("HeapProfiler.collectGarbage")
        out["heap_bytes"] = page.send("Runtime.getHeapUsage")["usedSize"]
        equity = []
        for i in range(runs + 1):
            leave(page)
            page.goto(f"{url}/#/jobs/{bt}")
            drawn = page.wait_js("window.__drawn['equity-chart']")
            if i:
                equity.append(drawn)
        out["equity_chart_ms"] = median(equity)
        page.goto(url + "/")
        out["redraw_ms"] = {k: round(v, 3) for k, v in page.evaluate(REDRAW, 300).items()}
        return out
    finally:
        if cdp:
            cdp.close()
        browser.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "build" / "stratq"))
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stratq-measure-"))
    token = secrets.token_urlsafe(24)
    tokens = work / "tokens"
    tokens.write_text(token + "\n")
    tokens.chmod(0o600)
    stack = Stack(args.bin, work, api_env={"STRATQ_API_TOKENS_FILE": str(tokens)})
    try:
        stack.start_redis()
        api = stack.start_api()
        stack.start_worker()
        out = measure(api.url, token, args.runs, args.chromium, work)
    finally:
        problems = stack.close()
    for p in problems:
        print(f"measure: {p}", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=1))
        return 1 if problems else 0
    for mode in ("cold", "warm"):
        m = out[mode]
        print(f"{mode}: {m['body_bytes']} B of files ({m['wire_bytes']} B on the wire); first chart {m['first_chart_ms']} ms,"
              f" first sample drawn {m['first_sample_ms']} ms; script {m['script_ms']} ms, tasks {m['task_ms']} ms")
    print(f"files: {out['cold']['files']}")
    print(f"JS heap on the overview: {out['heap_bytes']} B; equity chart drawn after {out['equity_chart_ms']} ms")
    print(f"one redraw: line chart (2 x 300 points) {out['redraw_ms']['line']} ms,"
          f" bar chart (60 x 2) {out['redraw_ms']['bar']} ms")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
