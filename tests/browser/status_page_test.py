#!/usr/bin/env python3
"""Browser test of the status page at GET / (issue 6).

Starts the real sqlgate with two SQLite databases, `core` (fine) and `app`
(non-critical, its file in a directory that does not exist, so it is down),
loads http://127.0.0.1:<port>/ in headless Chromium (Debian's `chromium`)
and asserts on what the browser rendered:

  - the DOM after the page's script ran (--dump-dom): a tile for core that is
    ready and healthy, a tile for app that is down and shows DB_UNAVAILABLE,
    the overall status "degraded";
  - two screenshots, desktop (1280x900) and phone (412x915), kept as test
    artifacts; their pixels must show the state colours of the page, side by
    side on the desktop and stacked in one column on the phone.

It also checks that the page is served as text/html and loads nothing from
outside the service.

Usage: status_page_test.py SQLGATE_BINARY ARTIFACT_DIR
Environment: CHROMIUM overrides the browser (default: chromium on PATH, then
/usr/bin/chromium). Python standard library only. Prints "N passed, N failed"
and exits 1 when anything failed; a missing browser is a failure, not a skip.
"""

import ctypes
import html.parser
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

START_TIMEOUT_S = 15  # sqlgate logs "listening"
HEALTH_TIMEOUT_S = 30  # /health shows core ready and app down
BROWSER_TIMEOUT_S = 120  # one Chromium run; generous for a loaded 2-core box
DESKTOP = (1280, 900)
PHONE = (412, 915)
MIN_PNG_BYTES = 8000  # a blank 1280x900 PNG is about 4 KB

# State colours of the page's light palette (status.html :root). Headless
# Chromium renders the light scheme; solid borders and badges keep the exact
# value, so counting exact pixels is reliable.
COLOUR_OK = (0x1A, 0x7F, 0x37)  # --ok: ready tile border and badge
COLOUR_BAD = (0xC6, 0x28, 0x28)  # --bad: down tile border and badge
COLOUR_WARN = (0xB2, 0x5E, 0x00)  # --warn: the "degraded" badge
MIN_COLOUR_PIXELS = 150

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--no-proxy-server",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--virtual-time-budget=5000",
]

# Nothing the proxy variables of the environment say applies to loopback.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- Processes -----------------------------------------------------------------


def _die_with_parent():
    """Runs in the child before exec: the kernel kills it if the test dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Children:
    """Every process the test starts, each in its own process group (Chromium
    forks helpers), so stop_all can end the whole group by the child's id."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent, **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p, sig=signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        for p in self.procs:
            if p.returncode is None:  # a reaped child's id may belong to someone else now
                self.stop(p)
        self.procs = []


def run_bounded(children, argv, timeout_s, **kw):
    """Runs argv to completion within timeout_s; returns (exit code or None on
    timeout, seconds taken). The whole process group is killed on timeout."""
    t0 = time.monotonic()
    p = children.start(argv, **kw)
    try:
        rc = p.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        rc = None
    # Helpers of a browser that exited must not outlive it either.
    Children.stop(p)
    return rc, time.monotonic() - t0


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def listening_port(log_path):
    """Port from the first complete {"msg":"listening","port":N} line, or 0."""
    for line in read_text(log_path).splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # still being written
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("msg") == "listening":
            port = obj.get("port")
            if isinstance(port, int) and port > 0:
                return port
    return 0


def http_get(url, timeout_s=5):
    """(status, headers, body bytes); 503 and other error statuses included."""
    try:
        with HTTP.open(url, timeout=timeout_s) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


# --- HTML ------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag = tag
        self.attrs = dict(attrs)
        self.parent = parent
        self.children = []  # Node or str

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.walk()

    def find_all(self, pred):
        return [n for n in self.walk() if pred(n)]

    def has_class(self, cls):
        return cls in (self.attrs.get("class") or "").split()


class TreeBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_html(text):
    b = TreeBuilder()
    b.feed(text)
    b.close()
    return b.root


def shown(node):
    """False when node or an ancestor is hidden by attribute or inline style."""
    while node is not None:
        style = (node.attrs.get("style") or "").replace(" ", "").lower()
        if "hidden" in node.attrs or "display:none" in style or "visibility:hidden" in style:
            return False
        node = node.parent
    return True


URL_ATTRS = ("src", "href", "action", "formaction", "poster", "srcset", "data", "background")


def external_refs(page):
    """Everything in the served page that would load from outside the service."""
    bad = []
    for n in parse_html(page).walk():
        for a in URL_ATTRS:
            v = (n.attrs.get(a) or "").strip()
            low = v.lower()
            if v and not low.startswith("data:") and (":" in low.split("/")[0] or low.startswith("//")):
                bad.append(f"<{n.tag} {a}={v!r}>")
        if n.tag == "script" and "src" in n.attrs:
            bad.append(f"<script src={n.attrs['src']!r}>")
        if n.tag == "link" and "stylesheet" in (n.attrs.get("rel") or "").lower():
            bad.append(f"<link rel=stylesheet href={n.attrs.get('href')!r}>")
    low = page.lower()
    for needle in ("http://", "https://", "@import", "url(//"):
        if needle in low:
            at = low.index(needle)
            bad.append(f"{needle!r} in the text: ...{page[max(0, at - 40):at + 60]!r}...")
    return bad


# --- PNG ------------------------------------------------------------------------


def png_decode(path):
    """(width, height, rows of RGB bytes) for an 8-bit RGB or RGBA,
    non-interlaced PNG, which is what Chromium writes."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None:
        raise ValueError("no IHDR chunk")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace != 0:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != h * (stride + 1):
        raise ValueError("image data has the wrong length")
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        i = y * (stride + 1)
        ftype, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        if ftype == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif ftype == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif ftype == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 255
        elif ftype == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        elif ftype != 0:
            raise ValueError(f"unknown PNG filter {ftype}")
        rows.append(bytes(line) if bpp == 3 else bytes(b for k, b in enumerate(line) if k % 4 != 3))
        prev = line
    return w, h, rows


def colour_box(rows, rgb):
    """(pixel count, (x0, y0, x1, y1) bounding box or None) of an exact colour."""
    needle = bytes(rgb)
    count, box = 0, None
    for y, row in enumerate(rows):
        x = row.find(needle)
        while x >= 0:
            if x % 3 == 0:
                px = x // 3
                count += 1
                if box is None:
                    box = [px, y, px, y]
                else:
                    box = [min(box[0], px), min(box[1], y), max(box[2], px), max(box[3], y)]
                x = row.find(needle, x + 3)
            else:
                x = row.find(needle, x + 1)
    return count, (tuple(box) if box else None)


# --- The test ----------------------------------------------------------------------


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")
        sys.stdout.flush()
        return ok


def find_chromium():
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    return shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)


def wait_health(base, proc):
    """Last /health report once core is ready and app is down, else (None, why)."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status, _, body = http_get(base + "/health")
            report = json.loads(body)
            dbs = report.get("databases", {})
            last = f"HTTP {status}: {body[:400]!r}"
            if dbs.get("core", {}).get("state") == "ready" and dbs.get("app", {}).get("state") == "down":
                return report, status, last
        except (OSError, ValueError, AttributeError) as e:
            last = repr(e)
        time.sleep(0.2)
    return None, 0, last


def check_dom(res, dom_text):
    root = parse_html(dom_text)
    tiles = root.find_all(lambda n: n.has_class("tile") and "data-db" in n.attrs)
    by_name = {t.attrs["data-db"]: t for t in tiles}
    res.check("the page renders one tile per database (core, app)",
              sorted(by_name) == ["app", "core"] and len(tiles) == 2,
              f"tiles: {[t.attrs.get('data-db') for t in tiles]}")

    core = by_name.get("core")
    res.check("core tile: data-state=ready, data-healthy=true, shown as ready and critical",
              core is not None and core.attrs.get("data-state") == "ready"
              and core.attrs.get("data-healthy") == "true" and shown(core)
              and any(n.has_class("state") and n.text().strip() == "ready" for n in core.walk())
              and "critical" in core.text() and "non-critical" not in core.text()
              and not core.find_all(lambda n: n.has_class("err")),
              f"core tile: {core.attrs if core else None} text {core.text()[:300] if core else ''!r}")

    app = by_name.get("app")
    errs = app.find_all(lambda n: n.has_class("err")) if app else []
    codes = [c.text().strip() for e in errs for c in e.find_all(lambda n: n.tag == "code") if shown(c)]
    res.check("app tile: data-state=down, data-healthy=false, non-critical, DB_UNAVAILABLE shown",
              app is not None and app.attrs.get("data-state") == "down"
              and app.attrs.get("data-healthy") == "false" and shown(app)
              and any(n.has_class("state") and n.text().strip() == "down" for n in app.walk())
              and "non-critical" in app.text() and codes == ["DB_UNAVAILABLE"]
              and "/nonexistent-dir/x.db" in errs[0].text(),
              f"app tile: {app.attrs if app else None} error codes {codes} "
              f"text {app.text()[:400] if app else ''!r}")

    latencies = [n.text().strip() for n in (core.walk() if core else []) if n.has_class("latency")]
    res.check("core tile shows a check latency in ms; app shows none",
              len(latencies) == 1 and latencies[0].endswith(" ms")
              and [n.text().strip() for n in (app.walk() if app else []) if n.has_class("latency")] == ["—"],
              f"core latency {latencies}")

    bars = [n for t in tiles for n in t.walk() if n.has_class("bar")]
    res.check("each tile has a pool bar with in-use and idle segments and its figures",
              len(bars) == 2
              and all(len([s for s in b.children if isinstance(s, Node) and s.has_class("seg")]) == 2 for b in bars)
              and all("in use" in t.text() and "idle" in t.text() and "waiting" in t.text() for t in tiles),
              f"{len(bars)} bars")

    overall = root.find_all(lambda n: n.attrs.get("id") == "overall")
    badge = root.find_all(lambda n: n.attrs.get("id") == "overall-status")
    fetch_err = root.find_all(lambda n: n.attrs.get("id") == "fetch-error")
    res.check("#overall: data-status=degraded, data-healthy=true, badge says degraded, no fetch error",
              len(overall) == 1 and overall[0].attrs.get("data-status") == "degraded"
              and overall[0].attrs.get("data-healthy") == "true"
              and overall[0].attrs.get("data-stale") == "false"
              and len(badge) == 1 and badge[0].text().strip() == "degraded"
              and len(fetch_err) == 1 and not shown(fetch_err[0]),
              f"overall {overall[0].attrs if overall else None}, "
              f"badge {badge[0].text() if badge else None!r}")


def check_screenshot(res, path, size, layout):
    label = f"{os.path.basename(path)} ({size[0]}x{size[1]})"
    nbytes = os.path.getsize(path) if os.path.exists(path) else 0
    if not res.check(f"{label} saved and non-trivial", nbytes >= MIN_PNG_BYTES,
                     f"{path}: {nbytes} bytes (want >= {MIN_PNG_BYTES})"):
        return
    try:
        w, h, rows = png_decode(path)
    except (OSError, ValueError, zlib.error) as e:
        res.check(f"{label} decodes as PNG", False, repr(e))
        return
    res.check(f"{label} has the requested size", (w, h) == size, f"{w}x{h}")
    ok_n, ok_box = colour_box(rows, COLOUR_OK)
    bad_n, bad_box = colour_box(rows, COLOUR_BAD)
    warn_n, _ = colour_box(rows, COLOUR_WARN)
    res.check(f"{label} shows the ready (green), down (red) and degraded (amber) colours",
              min(ok_n, bad_n, warn_n) >= MIN_COLOUR_PIXELS,
              f"pixels: green {ok_n}, red {bad_n}, amber {warn_n} (want >= {MIN_COLOUR_PIXELS} each)")
    if ok_box is None or bad_box is None:
        return
    if layout == "columns":
        # core's tile (green) entirely left of app's tile (red), on the same rows.
        res.check(f"{label}: tiles side by side", ok_box[2] < bad_box[0] and bad_box[1] < ok_box[3],
                  f"green box {ok_box}, red box {bad_box}")
    else:
        # One column: app's tile (red) starts below core's (green), same left edge.
        res.check(f"{label}: tiles stacked in one column", ok_box[3] < bad_box[1]
                  and abs(ok_box[0] - bad_box[0]) <= 2 and bad_box[2] < w,
                  f"green box {ok_box}, red box {bad_box}")


def run(res, children, sqlgate, artifacts, work):
    chromium = find_chromium()
    if not res.check("chromium is installed", chromium is not None and os.access(chromium, os.X_OK),
                     "install Debian's chromium package (scripts/deps test) or set CHROMIUM"):
        return
    os.makedirs(artifacts, exist_ok=True)

    svc_dir = os.path.join(work, "svc")
    os.mkdir(svc_dir)
    log_path = os.path.join(work, "sqlgate.log")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SQLGATE_DATABASES": "core,app",
        "CORE_DB_PATH": os.path.join(svc_dir, "core.db"),
        "APP_DB_PATH": "/nonexistent-dir/x.db",
        "APP_DB_CRITICAL": "false",
        "APP_DB_RETRY_MAX_MS": "1000",
        "SQLGATE_LISTEN": "127.0.0.1:0",
        "SQLGATE_LOG_LEVEL": "info",
    }
    with open(log_path, "wb") as log:
        svc = children.start([os.path.abspath(sqlgate)], cwd=svc_dir, env=env,
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        port = 0
        deadline = time.monotonic() + START_TIMEOUT_S
        while port == 0 and time.monotonic() < deadline and svc.poll() is None:
            time.sleep(0.05)
            port = listening_port(log_path)
        if not res.check("sqlgate starts and logs its port", port > 0,
                         f"exit {svc.poll()}; its log:\n{read_text(log_path)[-3000:]}"):
            return
        base = f"http://127.0.0.1:{port}"

        report, status, last = wait_health(base, svc)
        if not res.check("/health reports core ready and app down", report is not None,
                         f"last answer: {last}"):
            return
        app = report["databases"]["app"]
        res.check("/health: 200, status degraded, app's error is DB_UNAVAILABLE",
                  status == 200 and report.get("status") == "degraded" and report.get("healthy") is True
                  and (app.get("error") or {}).get("code") == "DB_UNAVAILABLE",
                  f"HTTP {status}: {json.dumps(report)[:600]}")

        status, headers, body = http_get(base + "/")
        ctype = headers.get("Content-Type", "") if headers else ""
        page = body.decode("utf-8", errors="replace")
        res.check("GET / answers 200 with text/html", status == 200 and ctype.lower().startswith("text/html")
                  and page.lstrip().lower().startswith("<!doctype html>"),
                  f"HTTP {status}, Content-Type {ctype!r}")
        bad = external_refs(page)
        res.check("the page is self-contained (no external URL, script or stylesheet)", not bad,
                  "; ".join(bad[:10]))

        url = base + "/"
        browser_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": work,  # Chromium writes ~/.pki and caches: keep them in the temp dir
            "XDG_CONFIG_HOME": os.path.join(work, "xdg-config"),
            "XDG_CACHE_HOME": os.path.join(work, "xdg-cache"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
        }
        browser_log = os.path.join(work, "chromium.log")

        def chromium_run(tag, extra, stdout):
            profile = os.path.join(work, f"profile-{tag}")
            with open(browser_log, "ab") as err:
                return run_bounded(children, [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                              *extra, url],
                                   BROWSER_TIMEOUT_S, cwd=work, env=browser_env,
                                   stdin=subprocess.DEVNULL, stdout=stdout, stderr=err)

        dom_path = os.path.join(artifacts, "status-page.dom.html")
        with open(dom_path, "wb") as out:
            rc, took = chromium_run("dom", ["--dump-dom"], out)
        dom = read_text(dom_path)
        if res.check("chromium --dump-dom renders the page", rc == 0 and "data-db=" in dom,
                     f"exit {rc} after {took:.1f}s, {len(dom)} bytes; chromium's log tail:\n"
                     f"{read_text(browser_log)[-2000:]}"):
            check_dom(res, dom)

        shots = [("status-page.png", DESKTOP, "columns"), ("status-page-phone.png", PHONE, "stacked")]
        for name, size, layout in shots:
            path = os.path.join(artifacts, name)
            if os.path.exists(path):
                os.unlink(path)
            rc, took = chromium_run(name.split(".")[0], [f"--screenshot={path}",
                                                         f"--window-size={size[0]},{size[1]}"],
                                    subprocess.DEVNULL)
            if res.check(f"chromium --screenshot {name} exits 0", rc == 0,
                         f"exit {rc} after {took:.1f}s; chromium's log tail:\n"
                         f"{read_text(browser_log)[-2000:]}"):
                check_screenshot(res, path, size, layout)
        print(f"artifacts in {artifacts}")

        res.check("sqlgate is still running after the browser runs", svc.poll() is None,
                  f"exit {svc.poll()}")
    finally:
        Children.stop(svc, signal.SIGTERM)
        shutil.copyfile(log_path, os.path.join(artifacts, "status-page-sqlgate.log"))


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        print("usage: status_page_test.py SQLGATE_BINARY ARTIFACT_DIR", file=sys.stderr)
        return 2
    # meson's timeout sends SIGTERM: unwind through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = Results()
    children = Children()
    work = tempfile.mkdtemp(prefix="sqlgate-browser-")
    try:
        # Chromium runs in the temp dir: the screenshot paths must be absolute.
        run(res, children, argv[1], os.path.abspath(argv[2]), work)
    except BaseException as e:  # a crash, a timeout (SIGTERM) or ^C counts as a failure
        res.check("the test ran to its end", False,
                  "interrupted by a signal" if isinstance(e, (SystemExit, KeyboardInterrupt)) else repr(e))
        raise
    finally:
        children.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        print(f"{res.passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
