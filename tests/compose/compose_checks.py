"""Structural checks behind tests/compose/check.sh.

Each subcommand prints one line per check, "PASS <what>" or "FAIL <what>: <why>";
check.sh counts them. Nothing here needs a Docker engine: the compose file is
judged by compose_stack.py, the Dockerfile from its text, the
apt index, the built binary and the project's own scripts.

  compose_checks.py vars HELP ENV_EXAMPLE CONFIGURATION_MD
  compose_checks.py dockerfile DOCKERFILE DEPS START BINARY OUT_DIR
  compose_checks.py docs README API_MD DEPLOYMENT_MD OPENAPI HELP
"""
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

failures = 0


def result(ok, what, why=""):
    global failures
    if ok:
        print(f"PASS {what}")
    else:
        failures += 1
        print(f"FAIL {what}: {why}")


# --- sqlgate --help -------------------------------------------------------------

HELP_LINE = re.compile(r"^  (\S+) \((.*)\)$")


def help_vars(path):
    """[(name, default or None, computed, secret, meaning)] from `sqlgate --help`."""
    lines = open(path, encoding="utf-8").read().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = HELP_LINE.match(line)
        if not m or not re.match(r"^(SQLGATE_|<N>_DB_)[A-Z0-9_]+$", m.group(1)):
            continue
        attrs = m.group(2)
        secret = attrs.endswith("; secret")
        attrs = attrs[: -len("; secret")] if secret else attrs
        default = attrs[len("default "):] if attrs.startswith("default ") else None
        # A default described in words ("from HOST/URL/PATH", "sqlgate:<name>").
        computed = default is not None and (default.startswith(("from ", "the ")) or "<" in default)
        meaning = lines[i + 1].strip() if i + 1 < len(lines) else ""
        out.append((m.group(1), default, computed, secret, meaning))
    return out


def defaults_by_name(help_path):
    return {name: default for name, default, _, _, _ in help_vars(help_path)}


def ms(value):
    return int(str(value).strip())


# --- variables in .env.example and docs/configuration.md ---------------------------


def cmd_vars(help_path, env_example, config_md):
    variables = help_vars(help_path)
    result(len(variables) >= 30, "sqlgate --help lists the variables", f"only {len(variables)} parsed")
    env_text = open(env_example, encoding="utf-8").read()
    md = open(config_md, encoding="utf-8").read()
    md_rows = [line for line in md.splitlines() if line.startswith("|")]
    known = set()
    for name, default, computed, secret, _ in variables:
        fulls = [name] if not name.startswith("<N>_DB_") else [
            name.replace("<N>_DB_", p) for p in ("CORE_DB_", "APP_DB_")]
        for full in fulls:
            known.add(full)
            # The comment line "# NAME: meaning. Default: X." and the line
            # "NAME=..." (set) or "#NAME=..." (not set).
            comment = re.search(rf"^# {re.escape(full)}: (.+)$", env_text, re.M)
            assign = re.search(rf"^#?{re.escape(full)}=(.*)$", env_text, re.M)
            result(comment is not None and assign is not None, f".env.example lists {full}",
                   "no '# NAME: ...' comment or no NAME= line")
            if comment is None or assign is None:
                continue
            if default is None:
                result("No default." in comment.group(1), f".env.example: {full} says it has no default",
                       comment.group(1))
            elif computed:
                result("Default:" in comment.group(1), f".env.example: {full} describes its default",
                       comment.group(1))
            else:
                result(f"Default: {default}." in comment.group(1),
                       f".env.example: {full} default {default}", comment.group(1))
                line = assign.group(0)
                if line.startswith("#"):
                    result(assign.group(1) == default, f".env.example: #{full}= shows the default",
                           line)
        # docs/configuration.md: a table row naming the variable in backticks,
        # with the default in backticks when it is a plain value.
        rows = [r for r in md_rows if f"`{name}`" in r]
        result(bool(rows), f"docs/configuration.md documents {name}", "no table row")
        if rows and default is not None and not computed:
            result(any(f"`{default}`" in r for r in rows),
                   f"docs/configuration.md gives the default of {name}", f"`{default}` not in row")
    # No typo'd variable in .env.example, and none of docker-compose.yml's own
    # (the SA password lives in deploy/compose.env.example, never handed to
    # sqlgate): every name is one sqlgate knows.
    unknown = []
    for m in re.finditer(r"^#?([A-Z][A-Z0-9_]*)=", env_text, re.M):
        if m.group(1) not in known:
            unknown.append(m.group(1))
    result(not unknown, ".env.example names only sqlgate's variables", ", ".join(unknown))


# --- Dockerfile ------------------------------------------------------------------------


def dockerfile_stages(path):
    """[(base, alias, [instructions])], continuation lines joined, comments dropped."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append((parts[0], alias, []))
        elif stages:
            stages[-1][2].append((word, rest.strip()))
    return stages


def apt_packages(instructions):
    pkgs = []
    for word, rest in instructions:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;", rest):
            toks = shlex.split(cmd)
            if "apt-get" in toks and "install" in toks:
                pkgs += [t for t in toks[toks.index("install") + 1:] if not t.startswith("-")]
    return pkgs


def bash_array(path, name):
    m = re.search(rf"^{name}=\(([^)]*)\)", open(path, encoding="utf-8").read(), re.M)
    return m.group(1).split() if m else None


def apt_candidate(pkg):
    out = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True).stdout
    m = re.search(r"Candidate: (\S+)", out)
    return m.group(1) if m else None


def package_of(lib_path):
    candidates = [lib_path]
    if lib_path.startswith("/usr/"):
        candidates.append(lib_path[4:])
    else:
        candidates.append("/usr" + lib_path)
    for p in candidates:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


def cmd_dockerfile(path, deps, start, binary, out_dir):
    stages = dockerfile_stages(path)
    result(len(stages) == 2, "Dockerfile has two stages", str([s[0] for s in stages]))
    if len(stages) != 2:
        return
    (b_base, b_alias, b_ins), (r_base, _, r_ins) = stages
    result(b_base == "debian:bookworm", "build stage on debian:bookworm", b_base)
    result(r_base == "debian:bookworm-slim", "runtime stage on debian:bookworm-slim", r_base)

    build_pkgs = apt_packages(b_ins)
    want = bash_array(deps, "build_pkgs")
    result(want is not None and sorted(build_pkgs) == sorted(want),
           "build stage installs scripts/deps' build_pkgs", f"{sorted(build_pkgs)} vs {want}")

    runtime_pkgs = apt_packages(r_ins)
    for pkg in build_pkgs + runtime_pkgs:
        cand = apt_candidate(pkg)
        result(cand not in (None, "(none)"), f"package {pkg} exists in the Debian 12 index", str(cand))
    dev = [p for p in runtime_pkgs if p.endswith("-dev") or p in ("gcc", "meson", "ninja-build")]
    result(not dev, "runtime stage installs no build tools", ", ".join(dev))

    # Every library the binary links comes from a runtime package (libc6 is
    # in the base image), and every runtime package but curl and
    # ca-certificates is such a library: only the runtime libraries.
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", binary], capture_output=True,
                                       text=True).stdout)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    result(len(needed) >= 4, "readelf lists the binary's libraries", str(needed))
    from_pkgs = set()
    for lib in needed:
        where = resolved.get(lib)
        if where is None:
            m = re.search(rf"^\s*(/\S*{re.escape(lib)})", ldd, re.M)
            where = m.group(1) if m else None
        pkg = package_of(where) if where else None
        if pkg is not None:
            from_pkgs.add(pkg)
        result(pkg is not None and (pkg in runtime_pkgs or pkg == "libc6"),
               f"runtime stage provides {lib}", f"from package {pkg}")
    extra = [p for p in runtime_pkgs if p not in from_pkgs and p not in ("curl", "ca-certificates")]
    result(not extra, "runtime stage has no library the binary does not use", ", ".join(extra))

    def last(ins, word):
        vals = [rest for w, rest in ins if w == word]
        return vals[-1] if vals else None

    user = last(r_ins, "USER")
    result(user is not None and user.split(":")[0] not in ("root", "0"), "runtime runs as a non-root user",
           str(user))
    result(any(w == "RUN" and "useradd" in rest for w, rest in r_ins), "runtime creates its user", "")
    result(last(r_ins, "EXPOSE") == "8080", "runtime EXPOSE 8080", str(last(r_ins, "EXPOSE")))
    envs = " ".join(rest for w, rest in r_ins if w == "ENV")
    result("SQLGATE_LISTEN=0.0.0.0:8080" in envs, "runtime ENV SQLGATE_LISTEN=0.0.0.0:8080", envs)
    hc = last(r_ins, "HEALTHCHECK") or ""
    result("/health/ready" in hc and ":8080" in hc and "curl" in hc and "curl" in runtime_pkgs,
           "HEALTHCHECK probes /health/ready with curl", hc)
    entry = last(r_ins, "ENTRYPOINT") or ""
    result("sqlgate" in entry, "ENTRYPOINT runs sqlgate", entry)

    # The build steps, for check.sh to replay: COPY lines, meson commands.
    workdir = last(b_ins, "WORKDIR") or "/"
    setups = [rest for w, rest in b_ins if w == "RUN" and "meson setup" in rest]
    result(len(setups) == 1, "build stage runs meson setup once", str(setups))
    copies, setup_args, compile_target, build_dir, src_dir = [], [], None, None, None
    if setups:
        for cmd in re.split(r"&&", setups[0]):
            toks = shlex.split(cmd)
            if toks[:2] == ["meson", "setup"]:
                build_dir, src_dir = toks[2], toks[3]
                setup_args = toks[4:]
            elif toks[:2] == ["meson", "compile"]:
                compile_target = toks[-1]
    # Like scripts/start: warnings do not stop a user's build (scripts/test
    # and CI build the same sources with -Dwerror=true).
    start_text = open(start, encoding="utf-8").read()
    werror = [a for a in setup_args if "werror" in a]
    result(not werror and not re.search(r"^[^#\n]*meson setup[^\n]*werror", start_text, re.M),
           "meson setup without -Dwerror, like scripts/start", str(setup_args))
    result(src_dir == workdir, "meson setup builds the WORKDIR the sources were copied to",
           f"{src_dir} vs {workdir}")
    for w, rest in b_ins:
        if w == "COPY":
            toks = rest.split()
            srcs, dest = toks[:-1], toks[-1]
            copies.append((srcs, dest))
    from_copy = [rest for w, rest in r_ins if w == "COPY" and rest.startswith(f"--from={b_alias}")]
    binary_in_build = from_copy[0].split()[1] if from_copy else None
    result(binary_in_build is not None and build_dir is not None
           and binary_in_build.startswith(build_dir + "/"),
           "runtime copies the binary out of the build directory", str(from_copy))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "copies"), "w", encoding="utf-8") as f:
        for srcs, dest in copies:
            d = dest if dest.startswith("/") else os.path.join(workdir, dest)
            rel = os.path.relpath(d, src_dir) if src_dir else d
            isdir = "dir" if dest.endswith("/") or len(srcs) > 1 else "path"
            for s in srcs:
                f.write(f"{s}\t{rel}\t{isdir}\n")
    with open(os.path.join(out_dir, "setup_args"), "w", encoding="utf-8") as f:
        f.write("\n".join(setup_args) + "\n")
    with open(os.path.join(out_dir, "compile_target"), "w", encoding="utf-8") as f:
        f.write((compile_target or "") + "\n")
    with open(os.path.join(out_dir, "binary_path"), "w", encoding="utf-8") as f:
        rel = os.path.relpath(binary_in_build, build_dir) if binary_in_build and build_dir else ""
        f.write(rel + "\n")


# --- docs -----------------------------------------------------------------------------


def yaml_blocks(md):
    return [b for b in re.findall(r"```ya?ml\n(.*?)```", md, re.S)]


def cmd_docs(readme, api_md, deploy_md, openapi, help_path):
    text = open(readme, encoding="utf-8").read()
    root = os.path.dirname(readme)
    for doc in ("docs/configuration.md", "docs/api.md", "docs/deployment.md"):
        result(f"({doc})" in text and os.path.exists(os.path.join(root, doc)), f"README links {doc}",
               "no markdown link or no file")
    result("docker compose up" in text and "never" in text and "engine" in text.lower(),
           "README documents `docker compose` and says what was never run", "")

    api = open(api_md, encoding="utf-8").read()
    spec = json.load(open(openapi, encoding="utf-8"))
    for path, ops in spec.get("paths", {}).items():
        for method in ops:
            if method.lower() not in ("get", "post", "put", "delete", "patch"):
                continue
            heading = re.search(rf"^#+ .*`?{method.upper()} {re.escape(path)}`?", api, re.M)
            result(heading is not None, f"docs/api.md has a section for {method.upper()} {path}", "")
    curl_count = len(re.findall(r"^\$ curl ", api, re.M))
    result(curl_count >= 12, "docs/api.md shows curl examples", f"{curl_count} found")

    dep = open(deploy_md, encoding="utf-8").read()
    defaults = defaults_by_name(help_path)
    probes = {}
    grace = None
    env = {}
    for block in yaml_blocks(dep):
        try:
            docs = list(yaml.safe_load_all(block))
        except yaml.YAMLError as e:
            result(False, "docs/deployment.md YAML parses", str(e))
            continue
        for d in docs:
            spec_ = (((d or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
            for c in spec_.get("containers", []) or []:
                for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                    if kind in c:
                        probes[kind] = ((c[kind].get("httpGet") or {}).get("path"))
                for e in c.get("env", []) or []:
                    env[e.get("name")] = str(e.get("value"))
            if "terminationGracePeriodSeconds" in spec_:
                grace = spec_["terminationGracePeriodSeconds"]
    result(probes.get("livenessProbe") == "/health/live", "Kubernetes liveness probe on /health/live",
           str(probes))
    result(probes.get("readinessProbe") == "/health/ready",
           "Kubernetes readiness probe on /health/ready", str(probes))
    result(probes.get("startupProbe") in ("/health/ready", "/health/live"),
           "Kubernetes startup probe", str(probes))
    delay = ms(env.get("SQLGATE_SHUTDOWN_DELAY_MS") or defaults.get("SQLGATE_SHUTDOWN_DELAY_MS", "0"))
    drain = ms(env.get("SQLGATE_DRAIN_TIMEOUT_MS") or defaults.get("SQLGATE_DRAIN_TIMEOUT_MS", "0"))
    result(grace is not None and grace >= (delay + drain) / 1000 + 1,
           "terminationGracePeriodSeconds covers delay + drain + 1 s",
           f"{grace} vs ({delay} + {drain}) ms")
    unit = re.search(r"```ini\n(\[Unit\].*?)```", dep, re.S)
    result(unit is not None and "ExecStart=" in unit.group(1) and "KillSignal=SIGTERM" in unit.group(1),
           "docs/deployment.md has a systemd unit", "")
    if unit:
        m = re.search(r"^TimeoutStopSec=(\d+)", unit.group(1), re.M)
        envs = dict(re.findall(r"^Environment=(\w+)=(\S+)", unit.group(1), re.M))
        d2 = ms(envs.get("SQLGATE_SHUTDOWN_DELAY_MS") or defaults.get("SQLGATE_SHUTDOWN_DELAY_MS", "0"))
        dr2 = ms(envs.get("SQLGATE_DRAIN_TIMEOUT_MS") or defaults.get("SQLGATE_DRAIN_TIMEOUT_MS", "0"))
        result(m is not None and int(m.group(1)) >= (d2 + dr2) / 1000 + 1,
               "systemd TimeoutStopSec covers delay + drain + 1 s", m.group(0) if m else "missing")
    result(re.search(r"option httpchk GET /health/ready", dep) is not None,
           "HAProxy checks /health/ready", "")
    result(re.search(r"proxy_pass http://", dep) is not None and "upstream" in dep,
           "nginx upstream snippet", "")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"vars": cmd_vars, "dockerfile": cmd_dockerfile, "docs": cmd_docs}[cmd](*args)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
