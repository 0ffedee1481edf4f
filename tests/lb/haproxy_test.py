#!/usr/bin/env python3
"""A real load balancer in front of sqlgate (issue 4, scenario 10).

HAProxy (Debian's haproxy package) balances two sqlgate instances, each with
its embedded SQLite databases in its own directory, and health-checks them
with `option httpchk GET /health/ready`. Client threads send a steady load of
POST /v1/query through HAProxy on keep-alive connections; midway, instance 1
gets SIGTERM. The shutdown sequence of docs/operations.md (readiness fails at once,
requests are still served for SQLGATE_SHUTDOWN_DELAY_MS, then the listener
closes, then requests on open connections get SHUTTING_DOWN with
Connection: close) must let HAProxy move the traffic without losing a request.

Asserts: every client request got 200 with the right rows; HAProxy marked
instance 1 down and sent it nothing once its delay was over; instance 1 exited
0 within its delay plus drain timeout; instance 2 served the rest and still
stops cleanly.

Usage: haproxy_test.py SQLGATE_BINARY [ARTIFACT_DIR] [--with-retries]
By default HAProxy is configured without any retry (no retry-on, retries 0,
no redispatch), so a request lost by sqlgate's shutdown sequence cannot be
hidden by HAProxy sending it again.
  --with-retries  add the usual production settings (retry-on
                  all-retryable-errors, retries 3, option redispatch).
Environment: HAPROXY overrides the binary (default /usr/sbin/haproxy, then
haproxy on PATH). Python standard library only. Prints "N passed, N failed"
and exits 1 when anything failed; a missing HAProxy is a failure, not a skip.
"""

import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CLIENT_THREADS = 4
TOTAL_RATE = 200  # requests per second, all threads together
LOAD_SECONDS = 10.0
SIGTERM_AT = 4.0  # seconds into the load
SHUTDOWN_DELAY_MS = 2000  # instance 1: readiness fails, requests still served
DRAIN_TIMEOUT_MS = 5000
CHECK_INTER_MS = 200  # HAProxy: check every 200 ms, down after 2 failures
EXIT_SLACK_S = 5.0  # beyond delay + drain, for a loaded 2-core box
REQUEST_TIMEOUT_S = 15.0
START_TIMEOUT_S = 20.0

QUERY = json.dumps({"sql": "SELECT id, name FROM users WHERE id = @id",
                    "params": {"id": 2}, "operation": "lb.steady"}).encode()

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
    """Every process the test starts, each in its own process group."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent,
                             stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p, sig=signal.SIGKILL, wait_s=10):
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        for p in self.procs:
            self.stop(p)
        self.procs = []


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def log_lines(path):
    """The complete JSON lines of a sqlgate log."""
    out = []
    for line in read_text(path).splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def http_get(url, timeout_s=5):
    try:
        with HTTP.open(url, timeout=timeout_s) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    """One sqlgate with the embedded default databases in its own directory."""

    def __init__(self, children, binary, work, name):
        self.name = name
        self.dir = os.path.join(work, name)
        os.mkdir(self.dir)
        self.log_path = os.path.join(work, f"{name}.log")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SQLGATE_LISTEN": "127.0.0.1:0",
            "SQLGATE_SHUTDOWN_DELAY_MS": str(SHUTDOWN_DELAY_MS),
            "SQLGATE_DRAIN_TIMEOUT_MS": str(DRAIN_TIMEOUT_MS),
            "SQLGATE_LOG_LEVEL": "info",
            # No tokens: requests must name an allowed Host, and HAProxy passes
            # on the client's, which names HAProxy's own port.
            "SQLGATE_ALLOWED_HOSTS": "127.0.0.1",
        }
        with open(self.log_path, "wb") as log:
            self.proc = children.start([os.path.abspath(binary)], cwd=self.dir, env=env,
                                       stdout=log, stderr=log)
        self.port = 0
        self.exit_code = None

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.port == 0:
                for obj in log_lines(self.log_path):
                    if obj.get("msg") == "listening" and isinstance(obj.get("port"), int):
                        self.port = obj["port"]
            if self.port:
                try:
                    if http_get(f"http://127.0.0.1:{self.port}/health/ready", 2)[0] == 200:
                        return True
                except OSError:
                    pass
            time.sleep(0.05)
        return False

    def log_tail(self, n=3000):
        return read_text(self.log_path)[-n:]


# --- HAProxy ----------------------------------------------------------------------


def haproxy_config(port, servers, stats_sock, retries):
    lines = [
        "global",
        "    log stderr format raw local0 info",
        "    maxconn 512",
        f"    stats socket {stats_sock} mode 600 level admin",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
    ]
    if retries:
        # A request refused before it ran (connection refused, or SHUTTING_DOWN
        # on a reused idle connection) is safe to send again to the other server.
        lines += [
            "    retries 3",
            "    option redispatch 1",
            "    retry-on all-retryable-errors",
        ]
    else:
        lines += ["    retries 0"]
    lines += [
        "",
        "frontend fe",
        f"    bind 127.0.0.1:{port}",
        "    default_backend be",
        "",
        "backend be",
        "    balance roundrobin",
        "    option httpchk GET /health/ready",
        "    http-check expect status 200",
        f"    default-server inter {CHECK_INTER_MS}ms fastinter {CHECK_INTER_MS}ms "
        f"downinter {CHECK_INTER_MS}ms fall 2 rise 2",
        "    http-response set-header X-Served-By %[srv_name]",
    ]
    lines += [f"    server {name} 127.0.0.1:{p} check" for name, p in servers]
    return "\n".join(lines) + "\n"


def haproxy_stats(sock_path):
    """Rows of HAProxy's `show stat` as dicts keyed by 'pxname/svname'."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(sock_path)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return {}
    lines = data.decode(errors="replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    head = lines[0][2:].split(",")
    rows = {}
    for line in lines[1:]:
        if line:
            row = dict(zip(head, line.split(",")))
            rows[f"{row.get('pxname')}/{row.get('svname')}"] = row
    return rows


# --- Load ----------------------------------------------------------------------------


class Load:
    """CLIENT_THREADS threads, each on its own keep-alive connection, each
    sending at TOTAL_RATE / CLIENT_THREADS per second until stop is set."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records = []  # (start s, end s, status or None, server, problem or "")
        self.t0 = None
        self.threads = []

    def start(self):
        self.t0 = time.monotonic()
        for i in range(CLIENT_THREADS):
            t = threading.Thread(target=self._client, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(REQUEST_TIMEOUT_S + 5)
        return all(not t.is_alive() for t in self.threads)

    def _client(self, idx):
        period = CLIENT_THREADS / TOTAL_RATE
        next_at = time.monotonic() + idx * period / CLIENT_THREADS
        conn = None
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at = max(next_at + period, time.monotonic())
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
            start = time.monotonic() - self.t0
            status, server, problem = None, "", ""
            try:
                conn.request("POST", "/v1/query", body=QUERY,
                             headers={"Content-Type": "application/json", "Connection": "keep-alive"})
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
                server = resp.getheader("X-Served-By") or ""
                if status != 200:
                    problem = f"HTTP {status}: {body[:300]!r}"
                else:
                    doc = json.loads(body)
                    rows = doc["results"][0]["rows"]
                    if rows != [{"id": 2, "name": "Grace Hopper"}]:
                        problem = f"wrong rows {rows!r}"
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError,
                    TypeError) as e:
                problem = f"{type(e).__name__}: {e}"
                if conn is not None:
                    conn.close()
                conn = None
            end = time.monotonic() - self.t0
            with self.lock:
                self.records.append((start, end, status, server, problem))
        if conn is not None:
            conn.close()


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


def find_haproxy():
    env = os.environ.get("HAPROXY")
    if env:
        return env
    if os.access("/usr/sbin/haproxy", os.X_OK):
        return "/usr/sbin/haproxy"
    return shutil.which("haproxy")


def start_haproxy(res, children, haproxy, work, servers, retries):
    """Starts HAProxy on a free port (a few tries: the port is only reserved
    once HAProxy binds it); returns (proc, port, stats socket) or None."""
    stats_sock = os.path.join(work, "haproxy.sock")
    log_path = os.path.join(work, "haproxy.log")
    cfg_path = os.path.join(work, "haproxy.cfg")
    port = free_port()
    with open(cfg_path, "w", encoding="utf-8") as f:
        f.write(haproxy_config(port, servers, stats_sock, retries))
    chk = subprocess.run([haproxy, "-c", "-f", cfg_path], capture_output=True, text=True, timeout=30)
    if not res.check("HAProxy accepts the generated configuration", chk.returncode == 0,
                     f"haproxy -c: {chk.stdout}{chk.stderr}"):
        return None
    for attempt in range(3):
        if attempt > 0:
            port = free_port()
            with open(cfg_path, "w", encoding="utf-8") as f:
                f.write(haproxy_config(port, servers, stats_sock, retries))
        with open(log_path, "ab") as log:
            p = children.start([haproxy, "-db", "-f", cfg_path], cwd=work, stdout=log, stderr=log)
        # HAProxy binds its listeners before it serves the stats socket.
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and p.poll() is None:
            if haproxy_stats(stats_sock):
                res.check("HAProxy starts and listens", True)
                return p, port, stats_sock
            time.sleep(0.05)
        Children.stop(p)  # most likely the port was taken meanwhile: try another
    res.check("HAProxy starts and listens", False, read_text(log_path)[-2000:])
    return None


def wait_both_up(port, stats_sock):
    """True once HAProxy sees both servers UP and routes a query to each."""
    seen = set()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        st = haproxy_stats(stats_sock)
        up = all(st.get(f"be/{s}", {}).get("status") == "UP" for s in ("s1", "s2"))
        if up:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/v1/query", body=QUERY, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    seen.add(r.getheader("X-Served-By"))
                conn.close()
            except (OSError, http.client.HTTPException):
                pass
            if {"s1", "s2"} <= seen:
                return True
        time.sleep(0.05)
    return False


def run(res, children, binary, work, retries, loads_out):
    haproxy = find_haproxy()
    if not res.check("haproxy is installed", haproxy is not None and os.access(haproxy, os.X_OK),
                     "install Debian's haproxy package (scripts/deps test) or set HAPROXY"):
        return
    inst = [Instance(children, binary, work, "s1"), Instance(children, binary, work, "s2")]
    for i in inst:
        if not res.check(f"sqlgate {i.name} starts and is ready", i.wait_ready(),
                         f"exit {i.proc.poll()}; its log:\n{i.log_tail()}"):
            return
    started = start_haproxy(res, children, haproxy, work, [(i.name, i.port) for i in inst], retries)
    if started is None:
        return
    hap, port, stats_sock = started
    if not res.check("HAProxy reports both servers UP and routes to each", wait_both_up(port, stats_sock),
                     f"stats: {json.dumps({k: v.get('status') for k, v in haproxy_stats(stats_sock).items()})}"):
        return

    print(f"HAProxy retries: {'retry-on all-retryable-errors, retries 3, redispatch' if retries else 'none'}")
    load = Load(port)
    loads_out.append(load)  # main saves its records whatever happens next
    load.start()
    time.sleep(SIGTERM_AT)
    t_term = time.monotonic() - load.t0
    inst[0].proc.send_signal(signal.SIGTERM)
    exit_bound = SHUTDOWN_DELAY_MS / 1000 + DRAIN_TIMEOUT_MS / 1000 + EXIT_SLACK_S
    try:
        inst[0].exit_code = inst[0].proc.wait(timeout=exit_bound)
    except subprocess.TimeoutExpired:
        inst[0].exit_code = None
    t_exit = time.monotonic() - load.t0
    remaining = LOAD_SECONDS - (time.monotonic() - load.t0)
    if remaining > 0:
        time.sleep(remaining)
    threads_done = load.join()
    t_end = time.monotonic() - load.t0
    stats = haproxy_stats(stats_sock)

    recs = sorted(load.records)
    bad = [r for r in recs if r[2] != 200 or r[4]]
    by_server = {}
    for r in recs:
        by_server[r[3]] = by_server.get(r[3], 0) + 1
    s1_times = [r[0] for r in recs if r[3] == "s1"]
    last_s1 = max(s1_times) if s1_times else None
    after_term = [r for r in recs if r[0] > t_term]
    delay_s = SHUTDOWN_DELAY_MS / 1000

    print(f"load: {len(recs)} requests in {t_end:.1f} s ({len(recs) / t_end:.0f}/s), "
          f"by server {by_server}; SIGTERM to s1 at {t_term:.2f} s, s1 exited "
          f"{inst[0].exit_code} at {t_exit:.2f} s; last request to s1 started at "
          f"{'-' if last_s1 is None else f'{last_s1:.2f}'} s")
    for name in ("s1", "s2"):
        row = stats.get(f"be/{name}", {})
        print(f"haproxy be/{name}: status {row.get('status')}, sessions {row.get('stot')}, "
              f"retries {row.get('wretr')}, redispatches {row.get('wredis')}, "
              f"connection errors {row.get('econ')}, response errors {row.get('eresp')}, "
              f"check status {row.get('check_status')}")
    row = stats.get("be/BACKEND", {})
    print(f"haproxy backend: retries {row.get('wretr')}, redispatches {row.get('wredis')}, "
          f"connection errors {row.get('econ')}, response errors {row.get('eresp')}")

    res.check("the client threads finished", threads_done, "a client thread is stuck")
    res.check("every client request got 200 with the right rows", not bad,
              f"{len(bad)} of {len(recs)} failed; first ones: "
              + "; ".join(f"at {r[0]:.2f}s via {r[3] or '?'}: {r[4] or r[2]}" for r in bad[:10]))
    res.check(f"the load was steady (at least {int(0.3 * TOTAL_RATE * LOAD_SECONDS)} requests)",
              len(recs) >= 0.3 * TOTAL_RATE * LOAD_SECONDS, f"{len(recs)} requests")
    res.check("both instances served requests before the SIGTERM",
              all(any(r[3] == n and r[0] < t_term for r in recs) for n in ("s1", "s2")),
              f"by server {by_server}")
    res.check(f"HAProxy stopped sending to s1 within its {SHUTDOWN_DELAY_MS} ms shutdown delay",
              last_s1 is not None and last_s1 < t_term + delay_s,
              f"last request to s1 started {'-' if last_s1 is None else f'{last_s1 - t_term:.2f}'} s "
              "after the SIGTERM")
    res.check("s2 served every request after s1's delay, and some",
              any(r[0] > t_term + delay_s for r in recs)
              and all(r[3] == "s2" for r in after_term if r[0] > t_term + delay_s),
              f"servers after the delay: {sorted({r[3] for r in after_term if r[0] > t_term + delay_s})}")
    hap_log = read_text(os.path.join(work, "haproxy.log"))
    # "Layer7 wrong status 503": the readiness answer, not the closed listener (L4).
    res.check("HAProxy marked s1 DOWN because /health/ready answered 503",
              "Server be/s1 is DOWN, reason: Layer7 wrong status, code: 503" in hap_log,
              "haproxy log: " + "; ".join(l for l in hap_log.splitlines() if "be/s1 is" in l)[:1500])
    res.check(f"s1 exited 0 within delay + drain + {EXIT_SLACK_S:.0f} s ({exit_bound:.0f} s)",
              inst[0].exit_code == 0, f"exit {inst[0].exit_code}; its log:\n{inst[0].log_tail()}")
    msgs = [o.get("msg") for o in log_lines(inst[0].log_path)]
    res.check("s1 logged 'shutdown started' and 'shutdown complete'",
              "shutdown started" in msgs and "shutdown complete" in msgs, f"messages: {msgs[-8:]}")
    res.check("s2 is still running and ready",
              inst[1].proc.poll() is None
              and http_get(f"http://127.0.0.1:{inst[1].port}/health/ready")[0] == 200,
              f"exit {inst[1].proc.poll()}")

    Children.stop(hap, signal.SIGUSR1)  # HAProxy's soft stop
    inst[1].proc.send_signal(signal.SIGTERM)
    try:
        code = inst[1].proc.wait(timeout=exit_bound)
    except subprocess.TimeoutExpired:
        code = None
    res.check("s2 exits 0 on SIGTERM once the load is over", code == 0,
              f"exit {code}; its log:\n{inst[1].log_tail()}")


def save_artifacts(work, artifacts, recs):
    """Keeps HAProxy's config and log, both sqlgate logs and one line per
    client request, whatever the outcome."""
    os.makedirs(artifacts, exist_ok=True)
    for name in ("haproxy.cfg", "haproxy.log", "s1.log", "s2.log"):
        src = os.path.join(work, name)
        dst = os.path.join(artifacts, f"lb-{name}")
        if os.path.exists(src):
            shutil.copyfile(src, dst)
        elif os.path.exists(dst):
            os.unlink(dst)  # an older run's file would mislead
    with open(os.path.join(artifacts, "lb-requests.tsv"), "w", encoding="utf-8") as f:
        f.write("start_s\tend_s\tstatus\tserver\tproblem\n")
        for r in sorted(recs):
            f.write(f"{r[0]:.4f}\t{r[1]:.4f}\t{r[2]}\t{r[3]}\t{r[4]}\n")


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    if not 1 <= len(args) <= 2 or any(f != "--with-retries" for f in flags):
        print("usage: haproxy_test.py SQLGATE_BINARY [ARTIFACT_DIR] [--with-retries]", file=sys.stderr)
        return 2
    # meson's timeout sends SIGTERM: unwind through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = Results()
    children = Children()
    work = tempfile.mkdtemp(prefix="sqlgate-lb-")
    loads = []
    try:
        run(res, children, args[0], work, "--with-retries" in flags, loads)
    except BaseException as e:  # a crash, a timeout (SIGTERM) or ^C counts as a failure
        res.check("the test ran to its end", False,
                  "interrupted by a signal" if isinstance(e, (SystemExit, KeyboardInterrupt)) else repr(e))
        raise
    finally:
        for load in loads:
            load.stop.set()
        children.stop_all()
        if len(args) > 1:
            recs = []
            for load in loads:
                with load.lock:
                    recs += load.records
            save_artifacts(work, args[1], recs)
            print(f"artifacts in {args[1]} (lb-*)")
        shutil.rmtree(work, ignore_errors=True)
        print(f"{res.passed} passed, {res.failed} failed")
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
