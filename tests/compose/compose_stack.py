"""The docker-compose stack, checked without a Docker engine (tests/compose/check.sh).

No Docker engine and no SQL Server can run on the machines this project is
built on. What can be checked is checked here:

  render   docker-compose.yml rendered by this file's own implementation of
           compose's interpolation and env_file rules (so the checks never
           depend on which compose, if any, is installed);
  same     that rendering against `docker compose config` (v2) or
           `docker-compose config` (v1) output, when one is installed;
  stack    the rendered stack: pinned images, the environment each service
           gets (the SA password reaches no sqlgate variable), wiring;
  init     deploy/mssql/server.sql and init.sh as text (least privilege);
  seed     deploy/mssql/init.sh run twice with a stand-in sqlcmd
           (fake-sqlcmd) that runs the demo schema and rows with FreeTDS's
           tsql against two TDS test servers; then sqlgate, configured with
           the rendered container environment, against those servers, and the
           embedded SQLite default, both asked the README's curl lines: the
           rows must be the same.

Each subcommand prints "PASS <what>" or "FAIL <what>: <why>" lines (check.sh
counts them) and exits 1 when one failed.

  compose_stack.py render COMPOSE_YML COMPOSE_ENV OUT_JSON [VAR=value...]
  compose_stack.py same OURS_JSON THEIRS_YML LABEL
  compose_stack.py stack RENDERED_JSON RAW_YML COMPOSE_ENV ENV_OUT HELP
  compose_stack.py init SERVER_SQL INIT_SH
  compose_stack.py seed ROOT RENDERED_JSON SQLGATE TDS_TESTSERVER WORK
"""
import decimal
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

failures = 0

# Names the stack is built on (deploy/mssql/init.sh, .env.example).
DATABASES = ("core", "app")
IMAGE_RE = re.compile(r"^mcr\.microsoft\.com/mssql/server:2022-CU\d+-ubuntu-22\.04$")
MSSQL_SERVICES = ("core", "app", "db-init")


def result(ok, what, why=""):
    global failures
    if ok:
        print(f"PASS {what}")
    else:
        failures += 1
        print(f"FAIL {what}: {why}")
    return ok


# --- compose's rules ---------------------------------------------------------------


def read_env_file(path):
    """KEY=VALUE lines as compose reads them, for files written as the project
    writes them (no quotes, no trailing comments, no $: see check_env_file)."""
    out = {}
    for line in open(path, encoding="utf-8").read().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value
    return out


def check_env_file(path, label):
    """v1 takes env_file values literally; v2 strips quotes, drops ' #...' and
    expands $: a value with none of these reads the same in both."""
    bad = [k for k, v in read_env_file(path).items()
           if v[:1] in ("'", '"') or " #" in v or "$" in v]
    result(not bad, f"{label}: values read the same by compose v1 and v2 (no quotes, ' #' or $)",
           ", ".join(bad))


VAR_RE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


class Unset(Exception):
    pass


def interpolate(text, env):
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
    ${VAR:?e}, ${VAR?e}, ${VAR:+a}, ${VAR+a}."""

    def sub(m):
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        value = env.get(name)
        empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if empty else value
        if op in (":?", "?"):
            if empty:
                raise Unset(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return "" if empty else arg
        return value or ""

    return VAR_RE.sub(sub, text)


def walk(node, env):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [walk(v, env) for v in node]
    if isinstance(node, dict):
        return {k: walk(v, env) for k, v in node.items()}
    return node


def as_dict(env):
    if env is None:
        return {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def render(compose_yml, compose_env, overrides):
    """The stack as `docker compose config` shows it: interpolated, env_file
    merged under environment. Keeps each service's env_file list (resolved
    paths) under x-env-files."""
    base = os.path.dirname(os.path.abspath(compose_yml))
    env = read_env_file(compose_env)
    env.update(overrides)
    doc = walk(yaml.safe_load(open(compose_yml, encoding="utf-8")), env)
    for name, svc in (doc.get("services") or {}).items():
        files = svc.pop("env_file", None) or []
        files = [files] if isinstance(files, str) else files
        paths = [os.path.normpath(os.path.join(base, f)) for f in files]
        merged = {}
        for p in paths:
            merged.update(read_env_file(p))
        merged.update(as_dict(svc.get("environment")))
        svc["environment"] = merged
        svc["x-env-files"] = paths
        # Relative bind mounts are relative to the compose file's directory.
        svc["volumes"] = [
            os.path.normpath(os.path.join(base, v.split(":", 1)[0])) + ":" + v.split(":", 1)[1]
            if isinstance(v, str) and v.startswith(".") and ":" in v else v
            for v in svc.get("volumes") or []]
    return doc


def cmd_render(compose_yml, compose_env, out_json, *assignments):
    overrides = dict(a.split("=", 1) for a in assignments)
    try:
        doc = render(compose_yml, compose_env, overrides)
    except Unset as e:
        print(f"render: required variable missing: {e}", file=sys.stderr)
        sys.exit(3)
    json.dump(doc, open(out_json, "w", encoding="utf-8"), indent=1, sort_keys=True)


def cmd_same(ours_json, theirs_yml, label):
    """What a real compose renders equals ours: images, each service's whole
    environment, entrypoint, depends_on conditions, volumes' targets."""
    ours = json.load(open(ours_json, encoding="utf-8"))["services"]
    theirs = (yaml.safe_load(open(theirs_yml, encoding="utf-8")) or {}).get("services") or {}
    result(sorted(ours) == sorted(theirs), f"{label}: the same services", f"{sorted(theirs)}")
    for name in sorted(set(ours) & set(theirs)):
        a, b = ours[name], theirs[name]
        result(a.get("image") == b.get("image"), f"{label}: {name} image", f"{b.get('image')}")
        result(as_dict(a.get("environment")) == as_dict(b.get("environment")),
               f"{label}: {name} gets exactly the environment computed here",
               f"keys {sorted(as_dict(b.get('environment')))}")
        result((a.get("entrypoint") or None) == (b.get("entrypoint") or None),
               f"{label}: {name} entrypoint", str(b.get("entrypoint")))

        def conds(s):
            d = s.get("depends_on") or {}
            return {k: (v or {}).get("condition") for k, v in d.items()} if isinstance(d, dict) else {
                k: "service_started" for k in d}

        result(conds(a) == conds(b), f"{label}: {name} depends_on", str(conds(b)))


# --- the rendered stack ------------------------------------------------------------


def cmd_stack(rendered, raw_yml, compose_env, env_out, help_path):
    doc = json.load(open(rendered, encoding="utf-8"))
    raw = yaml.safe_load(open(raw_yml, encoding="utf-8"))
    compose_vars = read_env_file(compose_env)
    services = doc.get("services", {})
    result(sorted(services) == ["app", "core", "db-init", "sqlgate"],
           "services core, app, db-init and sqlgate", str(sorted(services)))
    sa = compose_vars.get("MSSQL_SA_PASSWORD", "")
    result(len(sa) >= 8, "the compose env file sets MSSQL_SA_PASSWORD", "missing or short")

    # Pinned, the same cumulative update everywhere.
    images = {n: (services.get(n) or {}).get("image", "") for n in MSSQL_SERVICES}
    for n, image in images.items():
        result(IMAGE_RE.match(image) is not None,
               f"{n}: image pinned to a SQL Server 2022 CU tag (2022-CUnn-ubuntu-22.04)", image)
    result(len(set(images.values())) == 1, "core, app and db-init run the same image", str(images))
    raw_images = [(s or {}).get("image", "") for s in (raw.get("services") or {}).values()]
    result(not any("latest" in i for i in raw_images), "no image tag says latest", str(raw_images))

    # Who gets which environment.
    expect_keys = {
        "core": {"ACCEPT_EULA", "MSSQL_PID", "MSSQL_SA_PASSWORD"},
        "app": {"ACCEPT_EULA", "MSSQL_PID", "MSSQL_SA_PASSWORD"},
        "db-init": {"MSSQL_SA_PASSWORD", "MSSQL_CORE_PASSWORD", "MSSQL_APP_PASSWORD"},
    }
    for n, keys in expect_keys.items():
        s = services.get(n) or {}
        env = s.get("environment") or {}
        result(set(env) == keys, f"{n}: environment is exactly {', '.join(sorted(keys))}",
               str(sorted(env)))
        result(not s.get("x-env-files"), f"{n}: no env_file", str(s.get("x-env-files")))
        result(env.get("MSSQL_SA_PASSWORD") == sa, f"{n}: MSSQL_SA_PASSWORD from the compose env file",
               "differs")
    for n in ("core", "app"):
        env = (services.get(n) or {}).get("environment") or {}
        result(str(env.get("ACCEPT_EULA", "")).upper() == "Y", f"{n}: ACCEPT_EULA=Y", str(env.get("ACCEPT_EULA")))
        test = ((services.get(n) or {}).get("healthcheck") or {}).get("test") or []
        text = " ".join(test) if isinstance(test, list) else str(test)
        result("/opt/mssql-tools18/bin/sqlcmd" in text and "SELECT 1" in text and " -C" in text,
               f"{n}: healthcheck runs sqlcmd (mssql-tools18, -C for the self-signed certificate)", text)
        result("$MSSQL_SA_PASSWORD" in text and sa not in text,
               f"{n}: healthcheck reads the password in the container, not from the file", text)
    vols = {}
    for n in ("core", "app"):
        v = [x for x in (services.get(n) or {}).get("volumes", []) if isinstance(x, str)]
        named = [x.split(":")[0] for x in v if x.split(":")[1:2] == ["/var/opt/mssql"]]
        result(len(named) == 1 and named[0] in (doc.get("volumes") or {}),
               f"{n}: a named volume on /var/opt/mssql", str(v))
        vols[n] = named[0] if named else None
    result(vols.get("core") != vols.get("app"), "core and app have separate volumes", str(vols))

    init = services.get("db-init") or {}
    entry = init.get("entrypoint") or []
    mounts = [v for v in init.get("volumes", []) if isinstance(v, str)]
    mount = next((m for m in mounts if m.split(":")[1:2] == ["/deploy/mssql"]), "")
    src = mount.split(":")[0]
    result(mount.endswith(":ro") and os.path.isfile(os.path.join(src, "init.sh")),
           "db-init: mounts deploy/mssql read-only at /deploy/mssql", str(mounts))
    result(entry == ["/bin/bash", "/deploy/mssql/init.sh"], "db-init: runs deploy/mssql/init.sh",
           str(entry))
    cond = {k: (v or {}).get("condition") for k, v in (init.get("depends_on") or {}).items()}
    result(cond == {"core": "service_healthy", "app": "service_healthy"},
           "db-init: waits for core and app to be healthy", str(cond))
    result(str(init.get("restart")) == "no", "db-init: runs once (restart: no)", str(init.get("restart")))

    sg = services.get("sqlgate") or {}
    env = sg.get("environment") or {}
    files = sg.get("x-env-files") or []
    compose_env_path = os.path.abspath(compose_env)
    default_files = (raw.get("services") or {}).get("sqlgate", {}).get("env_file")
    result(default_files == ["${SQLGATE_CONTAINER_ENV_FILE:-sqlgate.env}"],
           "sqlgate: env_file is sqlgate.env by default (never .env, which holds the SA password)",
           str(default_files))
    result(len(files) == 1 and compose_env_path not in files
           and os.path.basename(files[0]) != ".env",
           "sqlgate: its env_file is not the compose env file", str(files))
    leaked = [k for k, v in env.items() if k.startswith("MSSQL_") or (sa and sa in v)]
    result(not leaked, "sqlgate: no variable holds or names the SA password", ", ".join(leaked))
    for db in DATABASES:
        up = db.upper()
        own = compose_vars.get(f"MSSQL_{up}_PASSWORD")
        result(bool(own) and env.get(f"{up}_DB_PASSWORD") == own and own != sa,
               f"sqlgate: {up}_DB_PASSWORD is MSSQL_{up}_PASSWORD (the login's, not sa's)",
               "differs, unset or the SA password")
        result(env.get(f"{up}_DB_USER") == f"sqlgate_{db}", f"sqlgate: {up}_DB_USER=sqlgate_{db}",
               str(env.get(f"{up}_DB_USER")))
        result(env.get(f"{up}_DB_NAME") == db, f"sqlgate: {up}_DB_NAME={db}", str(env.get(f"{up}_DB_NAME")))
        result(env.get(f"{up}_DB_HOST") == db, f"sqlgate: {up}_DB_HOST={db}", str(env.get(f"{up}_DB_HOST")))
    result(compose_vars.get("MSSQL_CORE_PASSWORD") != compose_vars.get("MSSQL_APP_PASSWORD"),
           "one login and password per database", "core and app share a password")
    result(env.get("SQLGATE_DATABASES") == "core,app", "sqlgate: SQLGATE_DATABASES=core,app",
           str(env.get("SQLGATE_DATABASES")))
    listen = env.get("SQLGATE_LISTEN") or "0.0.0.0:8080"  # the image's ENV
    result(listen.endswith(":8080") and not listen.startswith("127."),
           "sqlgate: listens on 8080 on every interface", listen)
    auth = bool(env.get("SQLGATE_API_TOKENS") or env.get("SQLGATE_API_TOKENS_FILE")) or env.get(
        "SQLGATE_ALLOW_ANONYMOUS", "").lower() in ("1", "true", "yes")
    result(auth, "sqlgate: tokens set (required off loopback)", "no tokens, not anonymous")
    result((sg.get("build") or {}).get("dockerfile") == "Dockerfile", "sqlgate: built from the Dockerfile",
           str(sg.get("build")))
    deps = {k: (v or {}).get("condition") for k, v in (sg.get("depends_on") or {}).items()}
    result(deps == {"core": "service_healthy", "app": "service_healthy",
                    "db-init": "service_completed_successfully"},
           "sqlgate: starts after core and app are healthy and db-init succeeded", str(deps))
    targets = []
    for p in sg.get("ports") or []:
        targets.append(int(p.get("target", 0)) if isinstance(p, dict) else int(str(p).split(":")[-1]))
    result(8080 in targets, "sqlgate: container port 8080 published", str(sg.get("ports")))
    published = [str(p) for p in sg.get("ports") or []]
    result(any(p.startswith("127.0.0.1:") for p in published),
           "sqlgate: published on the host's loopback by default", str(published))

    defaults = {}
    for line in open(help_path, encoding="utf-8").read().splitlines():
        m = re.match(r"^  (SQLGATE_\w+) \(default (\d+)\)$", line)
        if m:
            defaults[m.group(1)] = int(m.group(2))
    delay = int(env.get("SQLGATE_SHUTDOWN_DELAY_MS") or defaults.get("SQLGATE_SHUTDOWN_DELAY_MS", 0))
    drain = int(env.get("SQLGATE_DRAIN_TIMEOUT_MS") or defaults.get("SQLGATE_DRAIN_TIMEOUT_MS", 0))
    grace = sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u]
                for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(sg.get("stop_grace_period", "10s"))))
    result(drain > 0 and grace >= (delay + drain) / 1000 + 2, "sqlgate: stop_grace_period covers delay + drain",
           f"{grace}s vs {delay} + {drain} ms")
    with open(env_out, "w", encoding="utf-8") as f:
        for k, v in sorted(env.items()):
            f.write(f"{k}={v}\n")


# --- deploy/mssql as text ------------------------------------------------------------


def cmd_init(server_sql, init_sh):
    sql = open(server_sql, encoding="utf-8").read()
    code = "\n".join(l for l in sql.splitlines() if not l.lstrip().startswith("--")).upper()
    sh = open(init_sh, encoding="utf-8").read()
    used = set(re.findall(r"\$\((\w+)\)", sql))
    result(used == {"DB_NAME", "LOGIN_NAME", "LOGIN_PASSWORD"},
           "server.sql takes DB_NAME, LOGIN_NAME and LOGIN_PASSWORD", str(sorted(used)))
    for stmt in ("CREATE DATABASE", "CREATE LOGIN", "CREATE USER", "ALTER LOGIN"):
        result(stmt in code, f"server.sql: {stmt}", "missing")
    roles = re.findall(r"ALTER ROLE\s+(\w+)\s+ADD MEMBER", code)
    result(sorted(roles) == ["DB_DATAREADER", "DB_DATAWRITER"],
           "server.sql: the login's user gets db_datareader and db_datawriter only", str(roles))
    server_wide = [w for w in ("SERVER ROLE", "SP_ADDSRVROLEMEMBER", "SYSADMIN", "CONTROL SERVER",
                               "GRANT", "IMPERSONATE", "DB_OWNER", "DB_DDLADMIN", "DB_SECURITYADMIN")
                   if w in code]
    result(not server_wide, "server.sql: no server role or permission, no GRANT, no db_owner",
           ", ".join(server_wide))
    result(re.search(r"CHECK_POLICY\s*=\s*ON", code) is not None, "server.sql: CHECK_POLICY = ON", "")
    result(re.search(r"DEFAULT_DATABASE\s*=\s*\[\$\(DB_NAME\)\]", code) is not None,
           "server.sql: the login's default database is its own", "")
    result(re.search(r"(^|\s)-P(\s|$)", sh) is None and "SQLCMDPASSWORD" in sh,
           "init.sh: no password on a command line (SQLCMDPASSWORD, environment)", "")
    result("/opt/mssql-tools18/bin/sqlcmd" in sh, "init.sh: the image's sqlcmd (mssql-tools18)", "")


# --- the seed, end to end as far as it goes here ---------------------------------------


class Proc:
    """A child process with its output in a file; stopped by its own pid."""

    def __init__(self, argv, log, env, cwd=None):
        self.log = log
        self.p = subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env,
                                  cwd=cwd)

    def text(self):
        return open(self.log, encoding="utf-8", errors="replace").read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wait_for(what, fn, seconds=60):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def listening_port(proc):
    def find():
        if proc.p.poll() is not None:
            raise RuntimeError(f"exited with {proc.p.returncode}:\n{proc.text()[-2000:]}")
        for line in proc.text().splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("msg") == "listening":
                return j["port"]
        return None

    return wait_for("sqlgate to listen", find)


def readme_curls(readme):
    """The quick start's curl lines: [(method, path, body or None)]."""
    text = open(readme, encoding="utf-8").read()
    start = text.index("## Quick start")
    block = re.search(r"```sh\n(curl .*?)```", text[start:], re.S).group(1)
    out = []
    for cmd in block.replace("\\\n", " ").splitlines():
        toks = shlex.split(cmd)
        if not toks or toks[0] != "curl":
            continue
        method, body, url = "GET", None, None
        i = 1
        while i < len(toks):
            t = toks[i]
            if t == "-X":
                method = toks[i + 1]
                i += 2
            elif t == "-d":
                body = toks[i + 1]
                method = "POST" if method == "GET" else method
                i += 2
            elif t == "-H":
                i += 2
            elif t.startswith("-"):
                i += 1
            else:
                url = t
                i += 1
        out.append((method, "/" + url.split("/", 1)[1], body))
    return out


def http(port, method, path, body, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=body.encode() if body is not None else None)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def same_value(a, b, decimal_column):
    if decimal_column and isinstance(a, str) and isinstance(b, str):
        try:
            return decimal.Decimal(a) == decimal.Decimal(b)
        except decimal.InvalidOperation:
            return False
    return a == b


def compare_query(what, mine, theirs):
    """mine: the compose stack's answer (SQL Server types); theirs: embedded."""
    rm, rt = mine.get("results") or [], theirs.get("results") or []
    if not result(len(rm) == len(rt) == 1, f"{what}: one result set each", f"{len(rm)} vs {len(rt)}"):
        return
    cm, ct = rm[0]["columns"], rt[0]["columns"]
    result([c["name"] for c in cm] == [c["name"] for c in ct], f"{what}: the same columns",
           f"{cm} vs {ct}")
    dec = [c.get("type") == "decimal" for c in cm]
    rows_m, rows_t = rm[0]["rows"], rt[0]["rows"]
    ok = len(rows_m) == len(rows_t)
    for a, b in zip(rows_m, rows_t):
        va = list(a.values()) if isinstance(a, dict) else a
        vb = list(b.values()) if isinstance(b, dict) else b
        ok = ok and len(va) == len(vb) and all(same_value(x, y, d) for x, y, d in zip(va, vb, dec))
    result(ok, f"{what}: the same rows as the embedded default",
           f"\n      compose:  {json.dumps(rows_m)}\n      embedded: {json.dumps(rows_t)}")
    types = ", ".join(f"{x['name']} {x.get('type')}/{y.get('type')}" for x, y in zip(cm, ct))
    print(f"      column types (SQL Server / embedded SQLite): {types}")


def cmd_seed(root, rendered, sqlgate, testserver, work):
    doc = json.load(open(rendered, encoding="utf-8"))
    services = doc["services"]
    init_env = services["db-init"]["environment"]
    sg_env = services["sqlgate"]["environment"]
    fake = os.path.join(work, "fake")
    os.makedirs(fake, exist_ok=True)
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work, "LANG": "C.UTF-8",
                "FREETDSCONF": "/dev/null"}
    procs = []
    try:
        # One TDS test server per SQL Server container, with the login
        # init.sh creates there and its password from db-init's environment.
        for db in DATABASES:
            login, pw = f"sqlgate_{db}", init_env[f"MSSQL_{db.upper()}_PASSWORD"]
            pf = os.path.join(fake, f"port-{db}")
            procs.append(Proc([testserver, "--user", login, "--password", pw, "--database", db,
                               "--sqlite", os.path.join(work, f"{db}.sqlite"), "--port-file", pf],
                              os.path.join(work, f"tds-{db}.log"), base_env))
            wait_for(f"the TDS test server for {db}", lambda: os.path.exists(pf) and open(pf).read().strip())
            with open(os.path.join(fake, f"login-{db}"), "w", encoding="utf-8") as f:
                f.write(f"{login} {pw}\n")

        # deploy/mssql/init.sh with exactly db-init's environment, twice.
        init_sh = os.path.join(root, "deploy", "mssql", "init.sh")
        env = {**base_env, **init_env, "SQLCMD": os.path.join(root, "tests", "compose", "fake-sqlcmd"),
               "FAKE_DIR": fake}
        calls = os.path.join(fake, "calls")
        for run in (1, 2):
            r = subprocess.run(["bash", init_sh], env=env, capture_output=True, text=True, timeout=300)
            result(r.returncode == 0, f"init.sh run {run} succeeds with db-init's environment",
                   f"status {r.returncode}: {r.stdout}{r.stderr}")
            log = open(calls, encoding="utf-8").read() if os.path.exists(calls) else ""
            os.replace(calls, calls + f".{run}") if os.path.exists(calls) else None
            for db in DATABASES:
                mine = [l for l in log.splitlines() if f"call host={db} " in l]
                server = [l for l in mine if "input=server.sql" in l]
                result(len(server) == 1 and f"db_name={db} login_name=sqlgate_{db} login_password_set=yes"
                       in server[0], f"init.sh run {run}: server.sql on {db} for database {db}, login sqlgate_{db}",
                       "\n".join(mine))
                result(all("sa_password_set=yes" in l and " -U sa " in f" {l} " for l in mine),
                       f"init.sh run {run}: every call on {db} as sa, password from SQLCMDPASSWORD", "\n".join(mine))
                seeds = [l for l in mine if f"input={db}.sql" in l and f"db={db} " in l]
                result(len(seeds) == (1 if run == 1 else 0),
                       f"init.sh run {run}: {db}.sql run {'once' if run == 1 else 'not again'}", "\n".join(mine))
            secrets_in_argv = [l for l in log.splitlines()
                               if any(v and v in l.split("argv=", 1)[1] for v in init_env.values())]
            result(not secrets_in_argv, f"init.sh run {run}: no password on a command line",
                   "\n".join(secrets_in_argv))
        for db in DATABASES:
            text = open(os.path.join(fake, f"server-{db}.sql"), encoding="utf-8").read() \
                if os.path.exists(os.path.join(fake, f"server-{db}.sql")) else ""
            result(f"CREATE LOGIN [sqlgate_{db}]" in text and f"CREATE DATABASE [{db}]" in text,
                   f"server.sql for {db} names database {db} and login sqlgate_{db} once substituted", "")

        # The placeholders of deploy/compose.env.example are refused.
        for var in ("MSSQL_SA_PASSWORD", "MSSQL_CORE_PASSWORD", "MSSQL_APP_PASSWORD"):
            bad = dict(env, **{var: "Change-me-Str0ng-Passw0rd"})
            r = subprocess.run(["bash", init_sh], env=bad, capture_output=True, text=True, timeout=60)
            result(r.returncode == 2 and var in r.stderr and "Change-me" not in r.stderr,
                   f"init.sh refuses the placeholder in {var}, naming it, not its value",
                   f"{r.returncode}: {r.stderr}")
        bad = dict(env, MSSQL_APP_PASSWORD="Quote'In-Passw0rd")
        r = subprocess.run(["bash", init_sh], env=bad, capture_output=True, text=True, timeout=60)
        result(r.returncode == 2 and "single quote" in r.stderr, "init.sh refuses a single quote in a login password",
               r.stderr)

        # sqlgate with the container's environment (only the addresses and the
        # token placeholder changed), and the embedded default beside it.
        token = secrets.token_hex(32)
        env = {**base_env, **sg_env, "SQLGATE_LISTEN": "127.0.0.1:0", "SQLGATE_API_TOKENS": token}
        for db in DATABASES:
            env[f"{db.upper()}_DB_HOST"] = "127.0.0.1"
            env[f"{db.upper()}_DB_PORT"] = open(os.path.join(fake, f"port-{db}")).read().strip()
        for d in ("stack", "embedded"):
            os.makedirs(os.path.join(work, d), exist_ok=True)
        stack = Proc([sqlgate], os.path.join(work, "sqlgate-stack.log"), env, cwd=os.path.join(work, "stack"))
        procs.append(stack)
        embedded = Proc([sqlgate], os.path.join(work, "sqlgate-embedded.log"),
                        dict(base_env, SQLGATE_LISTEN="127.0.0.1:0"), cwd=os.path.join(work, "embedded"))
        procs.append(embedded)
        ps, pe = listening_port(stack), listening_port(embedded)
        for port, tok in ((ps, token), (pe, None)):
            wait_for("both databases ready",
                     lambda: http(port, "GET", "/health/ready", None, tok)[0] == 200)

        curls = readme_curls(os.path.join(root, "README.md"))
        result(len([c for c in curls if c[1].endswith("/query")]) >= 2, "README's quick start has query lines",
               str(curls))
        for method, path, body in curls:
            what = f"README {method} {path}" + (f" {json.loads(body)['sql']!r}" if body else "")
            sm, am = http(ps, method, path, body, token)
            se, ae = http(pe, method, path, body)
            result(sm == se and sm in (200, 202), f"{what}: the same status ({se})", f"{sm} vs {se}: {am}")
            if path.endswith("/query"):
                compare_query(what, am, ae)
            elif path == "/v1/databases":
                result(am.get("default") == ae.get("default")
                       and [d["name"] for d in am["databases"]] == [d["name"] for d in ae["databases"]]
                       and [d["driver"] for d in am["databases"]] == ["freetds", "freetds"],
                       f"{what}: the same databases and default, through freetds", json.dumps(am))
        # Every row of both demo tables, beyond the README's columns.
        for db, table in (("core", "users"), ("app", "orders")):
            body = json.dumps({"sql": f"SELECT * FROM {table} ORDER BY id"})
            _, am = http(ps, "POST", f"/v1/databases/{db}/query", body, token)
            _, ae = http(pe, "POST", f"/v1/databases/{db}/query", body)
            compare_query(f"every row of {db}.{table}", am, ae)
        # The two values that differ in form, pinned so the docs stay true.
        _, am = http(ps, "POST", "/v1/databases/app/query",
                     '{"sql": "SELECT amount FROM orders ORDER BY id", "rows_as": "arrays"}', token)
        _, ae = http(pe, "POST", "/v1/databases/app/query",
                     '{"sql": "SELECT amount FROM orders ORDER BY id", "rows_as": "arrays"}')
        result(am["results"][0]["rows"] == [["42.50"], ["1999.99"], ["12.00"]]
               and ae["results"][0]["rows"] == [["42.5"], ["1999.99"], ["12"]],
               "decimals: SQL Server keeps the scale (42.50), the embedded SQLite does not (42.5)",
               f"{am['results'][0]['rows']} vs {ae['results'][0]['rows']}")
        logs = stack.text()
        leaked = [v for v in (sg_env.get("CORE_DB_PASSWORD"), sg_env.get("APP_DB_PASSWORD"), token)
                  if v and v in logs]
        result(not leaked, "sqlgate's log holds no password or token", "a secret was logged")
    except Exception as e:  # noqa: BLE001 - any failure is one failed check with its reason
        result(False, "seed run", f"{type(e).__name__}: {e}")
    finally:
        for p in reversed(procs):
            p.stop()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"render": cmd_render, "same": cmd_same, "stack": cmd_stack, "init": cmd_init,
     "seed": cmd_seed, "envfile": check_env_file}[cmd](*args)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
