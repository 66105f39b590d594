"""Drives an lx-attnviz page in headless Chromium over the DevTools protocol (on a pipe: no network port).

  page.py shot PAGE FRAGMENT OUT W H
                     a screenshot (W x H) of PAGE#FRAGMENT, for the documentation
  page.py PAGE SHOT    opens PAGE#kind=cross&layer=1&head=2, then checks, as a person would see it:
                       - the page rendered (body data-ok="1") with no script error (window.onerror, exceptions);
                       - the view follows the address: kind, layer and head in the DOM and in the menus;
                       - moving the mouse over word 3 makes it the query, and over a box makes that box the query;
                       - a new address (kind=lang, layer 0, head 1) switches the view;
                       - choosing head 0 in the menu changes the address;
                     and saves a screenshot to SHOT. Prints what it checked; exits 1 on the first failure.
"""
import base64
import fcntl
import json
import os
import select
import subprocess
import sys
import tempfile
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1100", "--hide-scrollbars", "--remote-debugging-pipe"]


def high(fd):
    """fd moved to 10 or above, clear of the 3 and 4 the child needs."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


class Browser:
    def __init__(self):
        self.profile = tempfile.TemporaryDirectory()
        to_chrome_r, self.to_chrome = (high(fd) for fd in os.pipe())
        self.from_chrome, from_chrome_w = (high(fd) for fd in os.pipe())
        # Chromium reads commands on fd 3 and writes answers on fd 4
        self.proc = subprocess.Popen(
            ["chromium"] + FLAGS + ["--user-data-dir=" + self.profile.name, "about:blank"],
            pass_fds=(3, 4), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(to_chrome_r, 3), os.dup2(from_chrome_w, 4)))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            m = self.read()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def read(self, deadline=30):
        end = time.time() + deadline
        while b"\0" not in self.buf:
            left = end - time.time()
            if left <= 0 or not select.select([self.from_chrome], [], [], left)[0]:
                raise RuntimeError("no answer from Chromium")
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def open(self, url, w=1400, h=1100):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})

    def js(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, what, seconds=15):
        end = time.time() + seconds
        while time.time() < end:
            if self.js(expr):
                return
            time.sleep(0.1)
        fail(f"timed out waiting for {what}")

    def mouse(self, x, y):
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except RuntimeError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.profile.cleanup()


def fail(msg):
    print("page.py: " + msg, file=sys.stderr)
    sys.exit(1)


def state(b):
    return b.js("(function(){var s=document.getElementById('state').dataset, b=document.body.dataset;"
                "return {ok:b.ok, errors:b.errors, kind:s.kind, layer:s.layer, head:s.head, query:s.query,"
                "kindMenu:document.getElementById('kind').value, layerMenu:document.getElementById('layer').value,"
                "headMenu:document.getElementById('head').value, hash:location.hash,"
                "errtext:document.getElementById('errors').textContent};})()")


def expect(b, what, **want):
    s = state(b)
    bad = {k: (s[k], v) for k, v in want.items() if s[k] != v}
    if s["errors"] != "0" or s["errtext"]:
        fail(f"{what}: script errors: {s['errtext']!r}")
    exceptions = [e for e in b.events if e.get("method") == "Runtime.exceptionThrown"]
    if exceptions:
        fail(f"{what}: exception: {exceptions[0]['params']['exceptionDetails']}")
    if bad:
        fail(f"{what}: " + ", ".join(f"{k} is {g!r}, expected {w!r}" for k, (g, w) in bad.items()))
    print(f"ok: {what}")


def centre(b, expr):
    r = b.js(f"(function(){{var r=({expr}).getBoundingClientRect(); return [r.left+r.width/2, r.top+r.height/2];}})()")
    return r[0], r[1]


def screenshot(page, fragment, out, w, h):
    b = Browser()
    try:
        b.open("file://" + os.path.abspath(page) + "#" + fragment, w, h)
        b.wait("document.body && document.body.dataset.ok === '1'", "the page to render (data-ok=1)")
        png = base64.b64decode(b.send("Page.captureScreenshot", {"format": "png"})["data"])
        with open(out, "wb") as f:
            f.write(png)
    finally:
        b.close()


def main():
    if sys.argv[1] == "shot":
        screenshot(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return
    page, shot = os.path.abspath(sys.argv[1]), sys.argv[2]
    b = Browser()
    try:
        b.open("file://" + page + "#kind=cross&layer=1&head=2")
        b.wait("document.body && document.body.dataset.ok === '1'", "the page to render (data-ok=1)")
        expect(b, "the address picks kind cross, layer 1, head 2", ok="1", kind="cross", layer="1", head="2",
               kindMenu="cross", layerMenu="1", headMenu="2", query="t0")
        x, y = centre(b, "document.querySelector('.tok[data-i=\"3\"]')")
        b.mouse(x, y)
        b.wait("document.getElementById('state').dataset.query === 't3'", "word 3 to become the query")
        expect(b, "hovering word 3 makes it the query", query="t3", kind="cross", hash="#kind=cross&layer=1&head=2&token=3")
        if not b.js("document.querySelector('.tok[data-i=\"3\"]').classList.contains('q')"):
            fail("word 3 is not marked as the query")
        # the box whose centre lies in no smaller box: hovering its centre picks it
        i = b.js("(function(){var D=JSON.parse(document.getElementById('data').textContent), best=-1, a=1e18;"
                 "D.boxes.forEach(function(b,i){var s=(b[2]-b[0])*(b[3]-b[1]); if(s>4&&s<a){a=s;best=i;}}); return best;})()")
        bx = b.js(f"(function(){{var D=JSON.parse(document.getElementById('data').textContent), b=D.boxes[{i}],"
                  "c=document.getElementById('boxes').getBoundingClientRect();"
                  "return [c.left+(b[0]+b[2])/2*c.width/D.picture.w, c.top+(b[1]+b[3])/2*c.height/D.picture.h];})()")
        b.mouse(bx[0], bx[1])
        b.wait(f"document.getElementById('state').dataset.query === 'v{i}'", f"box {i} to become the query")
        expect(b, f"hovering box {i} makes it the query", query=f"v{i}")
        b.js("location.hash = '#kind=lang&layer=0&head=1&token=2'")
        b.wait("document.getElementById('state').dataset.kind === 'lang'", "the new address to apply")
        expect(b, "a new address switches to kind lang, layer 0, head 1", kind="lang", layer="0", head="1",
               headMenu="1", query="t2")
        b.js("(function(){var h=document.getElementById('head'); h.value='0'; h.dispatchEvent(new Event('change'));})()")
        expect(b, "choosing head 0 in the menu shows it and keeps it in the address", head="0",
               hash="#kind=lang&layer=0&head=0&token=2")
        b.js("location.hash = '#kind=cross&layer=1&head=mean&token=0'")
        b.wait("document.getElementById('state').dataset.head === 'mean' && "
               "document.getElementById('state').dataset.kind === 'cross'", "the view to come back")
        png = base64.b64decode(b.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"])
        with open(shot, "wb") as f:
            f.write(png)
        print(f"ok: screenshot {shot} ({len(png)} bytes)")
    finally:
        b.close()


if __name__ == "__main__":
    main()
