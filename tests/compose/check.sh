#!/usr/bin/env bash
# Checks the container and deployment files without a Docker engine or a SQL
# Server (neither can run on the build machines):
#   - docker-compose.yml rendered by compose_stack.py (compose's interpolation
#     and env_file rules), and compared with `docker compose config` (v2) and
#     `docker-compose config` (v1, Debian's) where installed; the rendered
#     stack: images pinned to a SQL Server 2022 CU, the environment each
#     service gets (the SA password reaches no sqlgate variable), wiring;
#   - deploy/mssql: server.sql and init.sh as text (least privilege), init.sh
#     run twice with a stand-in sqlcmd that runs the demo schema and rows with
#     tsql against the TDS test server, then sqlgate with the container's
#     environment against it: the README's curl lines answer the same rows as
#     the embedded SQLite default;
#   - the sqlgate container's environment and .env.example itself pass
#     `sqlgate --check-config`;
#   - every variable `sqlgate --help` lists is in .env.example (with its
#     default) and in docs/configuration.md;
#   - the Dockerfile: build packages equal scripts/deps' build list, runtime
#     packages exist in Debian 12 and cover the libraries the binary links,
#     non-root user, HEALTHCHECK; its build stage is replayed here (only the
#     copied files, the same meson commands) and must give a working binary;
#   - the docs: README links them, docs/api.md covers every OpenAPI path,
#     docs/deployment.md: probes, grace periods, snippets (haproxy -c).
# Prints one line per check and ends with "N passed, N failed".
# Usage: tests/compose/check.sh [SOURCE_ROOT]
#        with SQLGATE_BIN = the built binary, TDS_TESTSERVER = tds-testserver
set -uo pipefail

root="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)"
bin="${SQLGATE_BIN:-$root/build/src/service/sqlgate}"
tds="${TDS_TESTSERVER:-$root/build/tests/tds/tds-testserver}"
here="$root/tests/compose"
work="$(mktemp -d "${TMPDIR:-/tmp}/sqlgate-compose.XXXXXX")"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -s "$work/log" ] && sed 's/^/    /' "$work/log" | head -40; }

# check NAME COMMAND...: one check, the command's output shown when it fails.
check() {
  local name="$1"
  shift
  if "$@" >"$work/log" 2>&1; then pass "$name"; else fail "$name"; fi
}

# py SCRIPT SUBCOMMAND ARGS...: runs a checker and counts its PASS/FAIL lines.
py() {
  local script="$1" out rc
  shift
  out="$(python3 "$here/$script" "$@" 2>&1)"
  rc=$?
  echo "$out"
  passed=$((passed + $(grep -c '^PASS ' <<<"$out")))
  local f
  f=$(grep -c '^FAIL ' <<<"$out")
  failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    failed=$((failed + 1))
    echo "FAIL $script $1 crashed (status $rc)"
  fi
}

# A clean environment for the tools, so nothing from the caller's shell
# (a real MSSQL_SA_PASSWORD, PUBLISH_PORT, ...) leaks into the results.
clean_env=(env -i "PATH=$PATH" "HOME=$work" "LANG=C.UTF-8")

# --- tools --------------------------------------------------------------------------
check "sqlgate binary at \$SQLGATE_BIN" test -x "$bin"
check "tds-testserver at \$TDS_TESTSERVER" test -x "$tds"
check "FreeTDS's tsql is installed (Debian package freetds-bin)" command -v tsql
"$bin" --help >"$work/help.txt" 2>&1

# --- docker-compose.yml ---------------------------------------------------------------
# Two renderings: the example files as shipped (structure, env per service),
# and the way a user runs it, with passwords of their own (the seed run).
py compose_stack.py envfile "$root/deploy/compose.env.example" deploy/compose.env.example
py compose_stack.py envfile "$root/.env.example" .env.example
sed -e 's/^MSSQL_SA_PASSWORD=.*/MSSQL_SA_PASSWORD=Sa-Test-9f2b7c1e/' \
    -e 's/^MSSQL_CORE_PASSWORD=.*/MSSQL_CORE_PASSWORD=Core-Test-4d8a2f6b/' \
    -e 's/^MSSQL_APP_PASSWORD=.*/MSSQL_APP_PASSWORD=App-Test-7c3e9a1d/' \
    "$root/deploy/compose.env.example" >"$work/compose.env"
render() {
  (cd "$root" && "${clean_env[@]}" python3 "$here/compose_stack.py" render docker-compose.yml "$@")
}
check "docker-compose.yml renders with deploy/compose.env.example" \
  render deploy/compose.env.example "$work/example.json" SQLGATE_CONTAINER_ENV_FILE=.env.example
check "docker-compose.yml renders with passwords of the user's own" \
  render "$work/compose.env" "$work/rendered.json" SQLGATE_CONTAINER_ENV_FILE=.env.example
grep -v '^MSSQL_SA_PASSWORD=' "$root/deploy/compose.env.example" >"$work/nopw.env"
no_password() {
  ! render "$work/nopw.env" "$work/nopw.json" >"$work/nopw.out" 2>&1 &&
    grep -q 'MSSQL_SA_PASSWORD: set MSSQL_SA_PASSWORD in .env' "$work/nopw.out"
}
check "a compose env file without MSSQL_SA_PASSWORD is refused (\${...:?})" no_password

if [ -s "$work/example.json" ]; then
  py compose_stack.py stack "$work/example.json" "$root/docker-compose.yml" \
    "$root/deploy/compose.env.example" "$work/sqlgate.env" "$work/help.txt"
else
  fail "rendered compose file is missing; structural checks not run"
fi

# The real composes, where installed, must render what compose_stack.py does.
# v2 (`docker compose`) is the documented command; Debian 12 packages only v1.
# compose_run v1|v2 ARGS...: that compose in the source root, clean environment.
compose_run() {
  local cmd=(docker-compose)
  [ "$1" = v2 ] && cmd=(docker compose)
  shift
  (cd "$root" && "${clean_env[@]}" SQLGATE_CONTAINER_ENV_FILE=.env.example "${cmd[@]}" -f docker-compose.yml "$@")
}
render_with() { compose_run "$1" --env-file deploy/compose.env.example config >"$work/$1.yml"; }
refuses_nopw() {
  ! compose_run "$1" --env-file "$work/nopw.env" config >"$work/nopw.out" 2>&1 &&
    grep -q MSSQL_SA_PASSWORD "$work/nopw.out"
}
for v in v2 v1; do
  if [ "$v" = v2 ] && ! docker compose version >/dev/null 2>&1; then
    echo "NOTE docker compose (v2) is not installed here: docker-compose.yml was rendered by compose_stack.py and v1 only"
    continue
  fi
  if [ "$v" = v1 ] && ! command -v docker-compose >/dev/null 2>&1; then
    echo "NOTE docker-compose (v1, Debian package docker-compose) is not installed here"
    continue
  fi
  check "compose $v: config renders docker-compose.yml with deploy/compose.env.example" render_with "$v"
  [ -s "$work/$v.yml" ] && py compose_stack.py same "$work/example.json" "$work/$v.yml" "compose $v"
  check "compose $v: refuses a stack without MSSQL_SA_PASSWORD" refuses_nopw "$v"
done

# --- deploy/mssql: the init step -------------------------------------------------------
check "deploy/mssql/init.sh is valid bash" bash -n "$root/deploy/mssql/init.sh"
py compose_stack.py init "$root/deploy/mssql/server.sql" "$root/deploy/mssql/init.sh"
if [ -s "$work/rendered.json" ]; then
  mkdir -p "$work/seed"
  py compose_stack.py seed "$root" "$work/rendered.json" "$bin" "$tds" "$work/seed"
else
  fail "no rendering with test passwords; the seed run did not happen"
fi

# --- what sqlgate makes of that configuration ------------------------------------------
# .env.example's token is a placeholder that sqlgate refuses (see below); the
# acceptance checks put a random token in its place, as a user must.
token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
placeholder="$(sed -n 's/^SQLGATE_API_TOKENS=//p' "$root/.env.example")"
# The sqlgate container's environment, as docker compose would pass it.
container_check() {
  local envs=()
  mapfile -t envs < <(sed "s/^SQLGATE_API_TOKENS=.*/SQLGATE_API_TOKENS=$token/" "$work/sqlgate.env")
  mkdir -p "$work/container" &&
    (cd "$work/container" && "${clean_env[@]}" "${envs[@]}" "$bin" --check-config) >"$work/cc.out" &&
    grep -Eq '^  CORE_DB_HOST +core$' "$work/cc.out" &&
    grep -Eq '^  APP_DB_HOST +app$' "$work/cc.out" &&
    grep -Eq '^  CORE_DB_DRIVER +freetds$' "$work/cc.out" &&
    grep -Eq '^  CORE_DB_USER +sqlgate_core$' "$work/cc.out" &&
    grep -Eq '^  APP_DB_USER +sqlgate_app$' "$work/cc.out" &&
    grep -Eq '^  CORE_DB_PASSWORD +\(set, redacted\)$' "$work/cc.out" &&
    grep -Eq '^  APP_DB_PASSWORD +\(set, redacted\)$' "$work/cc.out" &&
    grep -Eq '^  SQLGATE_LISTEN +0\.0\.0\.0:8080$' "$work/cc.out" &&
    ! grep -q "$(sed -n 's/^MSSQL_SA_PASSWORD=//p' "$root/deploy/compose.env.example")" "$work/cc.out"
}
if [ -s "$work/sqlgate.env" ]; then
  check "sqlgate --check-config accepts the container's environment" container_check
else
  fail "no sqlgate environment from the rendered compose file"
fi

# .env.example read by sqlgate's own .env parser (scripts/start reads ./.env).
dotenv_check() {
  mkdir -p "$work/dotenv" &&
    sed "s/^SQLGATE_API_TOKENS=.*/SQLGATE_API_TOKENS=$token/" "$root/.env.example" >"$work/dotenv/.env" &&
    (cd "$work/dotenv" && "${clean_env[@]}" "$bin" --check-config) >"$work/de.out" &&
    grep -Eq '^  SQLGATE_DATABASES +core,app$' "$work/de.out" &&
    grep -Eq '^  CORE_DB_HOST +core$' "$work/de.out" &&
    grep -Eq '^  SQLGATE_API_TOKENS +\(set, redacted\)$' "$work/de.out"
}
check "sqlgate --check-config accepts .env.example as its .env" dotenv_check

# The placeholder itself must not start a service: exit 2, naming the
# variable, never the value.
placeholder_check() {
  local rc=0
  mkdir -p "$work/placeholder" && cp "$root/.env.example" "$work/placeholder/.env" &&
    [ -n "$placeholder" ] || return 1
  (cd "$work/placeholder" && "${clean_env[@]}" "$bin" --check-config) >"$work/ph.out" 2>&1 || rc=$?
  [ "$rc" -eq 2 ] && grep -q 'SQLGATE_API_TOKENS: token 1 is a placeholder' "$work/ph.out" &&
    ! grep -qF -- "$placeholder" "$work/ph.out"
}
check "sqlgate --check-config refuses .env.example's placeholder token" placeholder_check

# --- every variable, with its default, in .env.example and docs/configuration.md ---------
py compose_checks.py vars "$work/help.txt" "$root/.env.example" "$root/docs/configuration.md"

# --- Dockerfile --------------------------------------------------------------------------
py compose_checks.py dockerfile "$root/Dockerfile" "$root/scripts/deps" "$root/scripts/start" "$bin" "$work/df"
check ".dockerignore keeps .env, sqlgate.env and build directories out of the image" \
  bash -c "grep -qx '.env' '$root/.dockerignore' && grep -qx 'sqlgate.env' '$root/.dockerignore' && grep -qx 'build\*/' '$root/.dockerignore'"

# Replays the build stage: only what the Dockerfile copies, the same meson
# commands, and the binary where the runtime stage copies it from.
replay() {
  local ctx="$work/replay/src" bdir="$work/replay/build"
  mkdir -p "$ctx" || return 1
  # Docker's COPY: a directory's contents go into the destination; files go
  # into it when it is a directory (ends with / or several sources).
  while IFS=$'\t' read -r src dest isdir; do
    if [ -d "$root/$src" ]; then
      mkdir -p "$ctx/$dest" && cp -R "$root/$src/." "$ctx/$dest/" || return 1
    elif [ "$isdir" = dir ]; then
      mkdir -p "$ctx/$dest" && cp "$root/$src" "$ctx/$dest/" || return 1
    else
      mkdir -p "$(dirname "$ctx/$dest")" && cp "$root/$src" "$ctx/$dest" || return 1
    fi
  done <"$work/df/copies"
  local args=()
  mapfile -t args <"$work/df/setup_args"
  meson setup "$bdir" "$ctx" "${args[@]}" &&
    meson compile -C "$bdir" "$(cat "$work/df/compile_target")" &&
    test -x "$bdir/$(cat "$work/df/binary_path")" &&
    [ "$("$bdir/$(cat "$work/df/binary_path")" --version)" = "$("$bin" --version)" ]
}
if [ -s "$work/df/copies" ]; then
  check "the Dockerfile's build stage builds sqlgate from the copied files" replay
else
  fail "no COPY lines found in the Dockerfile's build stage"
fi

# --- docs ----------------------------------------------------------------------------------
py compose_checks.py docs "$root/README.md" "$root/docs/api.md" "$root/docs/deployment.md" \
  "$root/openapi/openapi.json" "$work/help.txt"

# The HAProxy snippet is a whole configuration: HAProxy itself must accept it
# (haproxy is installed by scripts/deps test).
haproxy_check() {
  python3 - "$root/docs/deployment.md" "$work/haproxy.cfg" <<'PY' &&
import re, sys
m = re.search(r"```haproxy\n(.*?)```", open(sys.argv[1], encoding="utf-8").read(), re.S)
open(sys.argv[2], "w", encoding="utf-8").write(m.group(1) if m else "")
sys.exit(0 if m else 1)
PY
    haproxy -c -f "$work/haproxy.cfg"
}
check "haproxy -c accepts the HAProxy snippet of docs/deployment.md" haproxy_check

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
