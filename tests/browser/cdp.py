"""Debian's Chromium, headless, driven over the Chrome DevTools Protocol.

Only the standard library and Debian's python3-websocket (websocket-client):
no driver, no npm. ``Chromium`` starts the browser in its own process group
with a throw-away profile and ends it by that group's id; ``Page`` is one tab
with the handful of things a test needs (navigate, evaluate, wait for a
condition, click, hover, type, screenshot). Every wait has a deadline.

One thread, one socket: a command is sent and the socket read until its
answer comes; events read on the way go to the handlers registered with
``on``. Waiting for a condition polls the page and reads events in between.
"""

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import websocket

DEADLINE = 20.0  # s, for any one condition
POLL = 0.05  # s between two looks at the page

FLAGS = [
    # Like a browser under an automation tool: no first-run UI, no traffic of
    # its own, no throttling of a tab nobody looks at.
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--hide-scrollbars",
    "--mute-audio",
    "--force-color-profile=srgb",
    "--password-store=basic",
    "--use-mock-keychain",
]


class CDPError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium with a fresh profile; ``close`` ends its process
    group (the browser and its renderers), whatever state it is in."""

    def __init__(self, exe, profile, log_path):
        self.exe = exe
        self.profile = Path(profile)
        self.log_path = Path(log_path)
        self.proc = None

    def start(self, timeout=DEADLINE):
        """Starts the browser; returns the browser's DevTools WebSocket URL."""
        self.profile.mkdir(parents=True, exist_ok=True)
        args = [self.exe, "--headless=new", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", *FLAGS]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
        args.append("about:blank")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        # Chromium writes "<port>\n<browser path>\n" here once it listens.
        active = self.profile / "DevToolsActivePort"
        end = time.monotonic() + timeout
        while True:
            lines = active.read_text().split("\n") if active.exists() else []
            if len(lines) >= 2 and lines[0].isdigit() and lines[1].startswith("/devtools/"):
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited ({self.proc.returncode}) before listening; see {self.log_path}")
            if time.monotonic() > end:
                raise CDPError(f"chromium wrote no DevToolsActivePort within {timeout:g} s; see {self.log_path}")
            time.sleep(POLL)

    def close(self):
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may outlive its leader for a moment (renderers).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None


class CDP:
    """One DevTools connection: commands by id, events to handlers."""

    def __init__(self, ws_url):
        # Chromium refuses connections that carry an Origin it does not allow.
        self.ws = websocket.create_connection(ws_url, timeout=DEADLINE, suppress_origin=True)
        self.next_id = 0
        self.handlers = {}

    def on(self, method, fn):
        self.handlers.setdefault(method, []).append(fn)

    def _read(self, timeout):
        """Reads one message (dispatching it if it is an event); None if none
        came within timeout seconds."""
        self.ws.settimeout(max(timeout, 0.001))
        try:
            msg = json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if "method" in msg:
            for fn in self.handlers.get(msg["method"], ()):
                fn(msg.get("params", {}), msg.get("sessionId"))
        return msg

    def pump(self, seconds):
        """Reads events for the given time."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._read(left)

    def send(self, method, params=None, session=None, timeout=DEADLINE):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            reply = self._read(left)
            if reply and reply.get("id") == mid:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
        raise CDPError(f"{method}: no answer within {timeout:g} s")

    def close(self):
        try:
            self.ws.close()
        except Exception:  # the browser may be gone already
            pass


class Page:
    """A tab of the browser at ``cdp``, with a fixed viewport."""

    def __init__(self, cdp, width, height):
        self.cdp = cdp
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.loads = 0
        self.documents = {}  # loaderId -> the main document's Network response
        self.on("Page.loadEventFired", lambda p: setattr(self, "loads", self.loads + 1))
        self.on("Network.responseReceived", self._response)
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setFocusEmulationEnabled", {"enabled": True})
        self.set_viewport(width, height)

    def on(self, method, fn):
        """Calls fn(params) on each event of that name from this tab."""
        self.cdp.on(method, lambda params, session: fn(params) if session == self.session else None)

    def _response(self, p):
        if p.get("type") == "Document":
            self.documents[p["loaderId"]] = p["response"]

    def send(self, method, params=None, timeout=DEADLINE):
        return self.cdp.send(method, params, self.session, timeout)

    def set_viewport(self, width, height):
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False,
                   "screenWidth": width, "screenHeight": height})

    def goto(self, url, timeout=DEADLINE):
        """Navigates; for a new document waits for its load event and returns
        its response ({status, headers}), for a move within the document
        (only the #fragment changes) returns None."""
        loads = self.loads
        res = self.send("Page.navigate", {"url": url}, timeout)
        if res.get("errorText"):
            raise CDPError(f"navigating to {url}: {res['errorText']}")
        loader = res.get("loaderId")
        if not loader:
            return None
        self.wait(f"{url} to load", lambda: self.loads > loads, timeout)
        doc = self.documents.get(loader)
        if doc is None:
            raise CDPError(f"no response seen for {url}")
        return {"status": doc["status"], "headers": {k.lower(): v for k, v in doc["headers"].items()}}

    def evaluate(self, expr, arg=None):
        """The value of a JavaScript expression; with ``arg``, expr is a
        function called with it (passed as JSON)."""
        if arg is not None:
            expr = f"({expr})({json.dumps(arg)})"
        res = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise CDPError(f"evaluating {expr[:80]!r}: {d.get('exception', {}).get('description') or d.get('text')}")
        return res["result"].get("value")

    def wait(self, what, cond, timeout=DEADLINE):
        """Waits until cond() is truthy (reading events in between); returns
        its value, or raises after timeout seconds."""
        end = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            self.cdp.pump(POLL)

    def wait_js(self, expr, arg=None, timeout=DEADLINE, what=None):
        """Waits until a JavaScript expression (or function of arg) is truthy."""
        return self.wait(what or expr, lambda: self.evaluate(expr, arg), timeout)

    def wait_selector(self, selector, timeout=DEADLINE):
        """Waits until an element matching selector is there and visible."""
        return self.wait_js(f"(s) => {VISIBLE}(document.querySelector(s))", selector, timeout,
                            what=f"{selector} to be visible")

    def count(self, selector):
        return self.evaluate("(s) => document.querySelectorAll(s).length", selector)

    def click(self, element, what, timeout=DEADLINE):
        """Clicks the middle of an element, as a user would with the mouse:
        waits until it is visible, enabled and not covered, scrolls it into
        view. ``element`` is a JavaScript expression for the element."""
        x, y = self.hover(element, what, timeout)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1})

    def hover(self, element, what, timeout=DEADLINE):
        """Moves the mouse to the middle of an element (waiting, as click
        does, until it can be reached); returns the point."""
        find = f"""() => {{
          const el = {element};
          if (!{VISIBLE}(el) || el.disabled) return null;
          el.scrollIntoView({{block: 'center', inline: 'center'}});
          const r = el.getBoundingClientRect();
          const x = r.left + r.width / 2, y = r.top + r.height / 2;
          const hit = document.elementFromPoint(x, y);
          return hit && (hit === el || el.contains(hit)) ? [x, y] : null;
        }}"""
        x, y = self.wait(f"{what} to be reachable", lambda: self.evaluate(f"({find})()"), timeout)
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        return x, y

    def fill(self, selector, text, timeout=DEADLINE):
        """Types text into an input in place of what it holds."""
        self.wait_js(f"(s) => {{ const el = document.querySelector(s);"
                     f" if (!{VISIBLE}(el) || el.disabled || el.readOnly) return false;"
                     f" el.focus(); el.select(); return document.activeElement === el; }}",
                     selector, timeout, what=f"{selector} to be editable")
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path, full_page=False):
        """A PNG of the viewport, or of the whole page with full_page."""
        self.evaluate("document.fonts.ready.then(() => true)")
        params = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        Path(path).write_bytes(base64.b64decode(data))


# A JavaScript function: is the element there, with a box, and not hidden?
VISIBLE = """((el) => {
  if (!el) return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
})"""
