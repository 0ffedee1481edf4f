#!/usr/bin/env bash
# Checks the container and deployment files without a Docker engine (none can
# run on the build machines):
#   - docker-compose.yml renders with Debian's docker-compose and .env.example
#     (`docker-compose config`), and the rendered stack has what it needs:
#     services core, app and sqlgate, health checks, a volume each, depends_on
#     service_healthy, sqlgate wired to core and app;
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
# Usage: tests/compose/check.sh [SOURCE_ROOT]   with SQLGATE_BIN = the built binary
set -uo pipefail

root="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)"
bin="${SQLGATE_BIN:-$root/build/src/service/sqlgate}"
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

# py SUBCOMMAND ARGS...: runs compose_checks.py and counts its PASS/FAIL lines.
py() {
  local out rc
  out="$(python3 "$here/compose_checks.py" "$@" 2>&1)"
  rc=$?
  echo "$out"
  passed=$((passed + $(grep -c '^PASS ' <<<"$out")))
  local f
  f=$(grep -c '^FAIL ' <<<"$out")
  failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    failed=$((failed + 1))
    echo "FAIL compose_checks.py $1 crashed (status $rc)"
  fi
}

# A clean environment for the tools, so nothing from the caller's shell
# (a real MSSQL_SA_PASSWORD, PUBLISH_PORT, ...) leaks into the results.
clean_env=(env -i "PATH=$PATH" "HOME=$work" "LANG=C.UTF-8")

compose() {
  (cd "$root" && "${clean_env[@]}" SQLGATE_ENV_FILE=.env.example \
    docker-compose -f docker-compose.yml "$@")
}

# --- tools --------------------------------------------------------------------------
check "docker-compose is installed (Debian package docker-compose)" command -v docker-compose
check "sqlgate binary at \$SQLGATE_BIN" test -x "$bin"
"$bin" --help >"$work/help.txt" 2>&1

# --- docker-compose.yml ---------------------------------------------------------------
render() { compose --env-file .env.example config >"$work/rendered.yml"; }
listed() { [ "$(compose --env-file .env.example config "$1" | sort | tr '\n' ' ')" = "$2" ]; }
check "docker-compose config renders docker-compose.yml with .env.example" render
check "docker-compose config --quiet accepts it" compose --env-file .env.example config --quiet
check "docker-compose config --services lists app, core, db-init, sqlgate" \
  listed --services "app core db-init sqlgate "
check "docker-compose config --volumes lists app-data, core-data" listed --volumes "app-data core-data "

# Without an SA password the stack refuses to render (the :? guard).
grep -v '^MSSQL_SA_PASSWORD=' "$root/.env.example" >"$work/nopw.env"
no_password() {
  ! compose --env-file "$work/nopw.env" config >"$work/nopw.out" 2>&1 &&
    grep -q MSSQL_SA_PASSWORD "$work/nopw.out"
}
check "docker-compose refuses a stack without MSSQL_SA_PASSWORD" no_password

if [ -s "$work/rendered.yml" ]; then
  py compose "$work/rendered.yml" "$root/docker-compose.yml" "$work/sqlgate.env" "$work/help.txt"
else
  fail "rendered compose file is missing; structural checks not run"
fi

# --- what sqlgate makes of that configuration ------------------------------------------
# .env.example's token is a placeholder that sqlgate refuses (see below); the
# acceptance checks put a random token in its place, as a user must.
token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
placeholder="$(sed -n 's/^SQLGATE_API_TOKENS=//p' "$root/.env.example")"
# The sqlgate container's environment, as docker-compose would pass it.
container_check() {
  local envs=()
  mapfile -t envs < <(sed "s/^SQLGATE_API_TOKENS=.*/SQLGATE_API_TOKENS=$token/" "$work/sqlgate.env")
  mkdir -p "$work/container" &&
    (cd "$work/container" && "${clean_env[@]}" "${envs[@]}" "$bin" --check-config) >"$work/cc.out" &&
    grep -Eq '^  CORE_DB_HOST +core$' "$work/cc.out" &&
    grep -Eq '^  APP_DB_HOST +app$' "$work/cc.out" &&
    grep -Eq '^  CORE_DB_DRIVER +freetds$' "$work/cc.out" &&
    grep -Eq '^  CORE_DB_PASSWORD +\(set, redacted\)$' "$work/cc.out" &&
    grep -Eq '^  SQLGATE_LISTEN +0\.0\.0\.0:8080$' "$work/cc.out" &&
    ! grep -q "$(sed -n 's/^MSSQL_SA_PASSWORD=//p' "$root/.env.example")" "$work/cc.out"
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
check "db-init refuses the .env.example placeholder passwords" \
  grep -q 'change-me' "$root/deploy/mssql-init.sh"
check "deploy/mssql-init.sh is valid bash" bash -n "$root/deploy/mssql-init.sh"

# --- every variable, with its default, in .env.example and docs/configuration.md ---------
py vars "$work/help.txt" "$root/.env.example" "$root/docs/configuration.md"

# --- Dockerfile --------------------------------------------------------------------------
py dockerfile "$root/Dockerfile" "$root/scripts/deps" "$root/scripts/start" "$bin" "$work/df"
check ".dockerignore keeps .env and build directories out of the image" \
  bash -c "grep -qx '.env' '$root/.dockerignore' && grep -qx 'build\*/' '$root/.dockerignore'"

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
py docs "$root/README.md" "$root/docs/api.md" "$root/docs/deployment.md" \
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
