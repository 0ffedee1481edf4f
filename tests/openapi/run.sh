#!/usr/bin/env bash
# Runs the integration suites with the harness recording every HTTP exchange,
# then lints openapi/openapi.json and validates every recorded response
# against it (validate.py). Prints validate.py's "N passed, N failed".
#
# Usage: run.sh VALIDATE_PY OPENAPI_JSON SUITE_EXE...   (SQLGATE_BIN must be set)
#        run.sh --selftest SELFTEST_PY VALIDATE_PY OPENAPI_JSON
#
# The suites' own results are the integration tests' business: their output
# goes to a log here and only their failing checks are echoed (never their
# Check summary lines, which scripts/test-summary.py would count twice). Any
# response that does not validate fails this test, and so does an operation
# of the document that no suite exercised (validate.py).
set -uo pipefail

# Debian's python3-jsonschema lives under /usr/bin/python3; another python3
# first on PATH (pyenv, venv) may lack it.
py=""
for cand in /usr/bin/python3 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import jsonschema' 2>/dev/null; then
    py="$cand"
    break
  fi
done
if [ -z "$py" ]; then
  echo "run.sh: no python3 with the jsonschema module (apt-get install python3-jsonschema)"
  echo "0 passed, 1 failed"
  exit 1
fi

if [ "$1" = "--selftest" ]; then
  shift
  exec "$py" "$@"
fi

validate="$1"
doc="$2"
shift 2

work="$(mktemp -d "${TMPDIR:-/tmp}/sqlgate-openapi-XXXXXX")"
trap 'rm -rf "$work"' EXIT
record="$work/exchanges.jsonl"
: >"$record"

for exe in "$@"; do
  name="$(basename "$exe")"
  before=$(wc -l <"$record")
  SQLGATE_IT_RECORD="$record" "$exe" >"$work/$name.log" 2>&1
  rc=$?
  after=$(wc -l <"$record")
  echo "$name: exit $rc, $((after - before)) exchanges recorded"
  if [ "$rc" -ne 0 ]; then
    # Check's failure lines ("file:line:F:tcase:test:i: message"), not its summary.
    grep -E ':[FE]:' "$work/$name.log" | head -20 | sed 's/^/    /'
  fi
done

"$py" "$validate" "$doc" "$record" >"$work/validate.out" 2>&1
status=$?
cat "$work/validate.out"
if ! grep -q -E '^[0-9]+ passed, [0-9]+ failed$' "$work/validate.out"; then
  echo "run.sh: validate.py ended without a summary (exit $status)"
  echo "0 passed, 1 failed"
  status=1
fi
exit "$status"
