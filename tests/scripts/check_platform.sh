#!/usr/bin/env bash
# scripts/deps' platform checks and scripts/start's build handling, without
# apt-get, a real OS change or a real build: fake /etc/os-release files
# (SQLGATE_OS_RELEASE), a fake `meson` first on PATH that reports a chosen
# version (and, for scripts/start, logs its arguments and fails the compile
# with a message), and SQLGATE_DEPS_INSTALL=0 so a missing package can never
# start apt-get.
# Prints one line per check and ends with "N passed, N failed".
# Usage: tests/scripts/check_platform.sh [SOURCE_ROOT]
set -uo pipefail

root="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/sqlgate-platform.XXXXXX")"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# The fake meson: `--version` prints $FAKE_MESON_VERSION; other calls are
# logged to $FAKE_MESON_LOG; `setup` creates build.ninja; `compile` prints a
# compiler error and fails when FAKE_MESON_COMPILE_FAILS=1.
mkdir -p "$work/bin"
cat >"$work/bin/meson" <<'SH'
#!/usr/bin/env bash
if [ "${1:-}" = --version ]; then echo "$FAKE_MESON_VERSION"; exit 0; fi
echo "$*" >>"$FAKE_MESON_LOG"
case "${1:-}" in
  setup) mkdir -p "$2" && : >"$2/build.ninja"; echo "The Meson build system (fake)" ;;
  compile)
    if [ "${FAKE_MESON_COMPILE_FAILS:-0}" = 1 ]; then
      echo "../src/service/main.c:42:5: error: fake compiler error for the test" >&2
      echo "ninja: build stopped: subcommand failed."
      exit 1
    fi
    echo "[1/1] Linking target src/service/sqlgate"
    mkdir -p "$3/src/service" &&
      printf '#!/bin/sh\necho "fake sqlgate $*"\n' >"$3/src/service/sqlgate" &&
      chmod +x "$3/src/service/sqlgate" ;;
esac
exit 0
SH
chmod +x "$work/bin/meson"
need="$(sed -n "s/^.*meson_version *: *'>= *\([0-9][0-9.]*\)'.*$/\1/p" "$root/meson.build")"

# os_release NAME ID VERSION_ID PRETTY: writes a fake os-release file.
os_release() {
  printf 'PRETTY_NAME="%s"\nNAME="x"\nVERSION_ID="%s"\nID=%s\n' "$4" "$3" "$2" >"$work/$1"
}
os_release debian12 debian 12 "Debian GNU/Linux 12 (bookworm)"
os_release debian13 debian 13 "Debian GNU/Linux 13 (trixie)"
os_release debian11 debian 11 "Debian GNU/Linux 11 (bullseye)"
os_release ubuntu2404 ubuntu 24.04 "Ubuntu 24.04.1 LTS"
os_release ubuntu2204 ubuntu 22.04 "Ubuntu 22.04.4 LTS"
os_release fedora fedora 40 "Fedora Linux 40 (Workstation Edition)"
# Unquoted values are valid os-release syntax too.
printf 'ID=debian\nVERSION_ID=12\nPRETTY_NAME=Debian12\n' >"$work/debian12-unquoted"

# deps OS_FILE MESON_VERSION [VAR=value...]: runs `scripts/deps check`; status
# in $rc, stdout+stderr in $work/out.
deps() {
  local os="$1" ver="$2"
  shift 2
  rc=0
  env -i "PATH=$work/bin:$PATH" "HOME=$work" "SQLGATE_OS_RELEASE=$work/$os" \
    "FAKE_MESON_VERSION=$ver" "FAKE_MESON_LOG=$work/meson.log" SQLGATE_DEPS_INSTALL=0 "$@" \
    "$root/scripts/deps" check >"$work/out" 2>&1 || rc=$?
}

# expect NAME STATUS PATTERN...: $rc is STATUS (0, "fail" or "any") and the output
# matches every extended regex; "!PATTERN" must not match.
expect() {
  local name="$1" want="$2" ok=1 p
  shift 2
  case "$want" in
    0) [ "$rc" -eq 0 ] || ok=0 ;;
    fail) [ "$rc" -ne 0 ] || ok=0 ;;
  esac
  for p in "$@"; do
    if [ "${p:0:1}" = '!' ]; then
      grep -Eq -- "${p:1}" "$work/out" && ok=0
    else
      grep -Eq -- "$p" "$work/out" || ok=0
    fi
  done
  if [ "$ok" = 1 ]; then
    passed=$((passed + 1))
    echo "PASS $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name (status $rc, wanted $want); output:"
    sed 's/^/    /' "$work/out"
  fi
}

deps debian12 1.0.1
expect "Debian 12 with Debian's meson 1.0.1 passes quietly" 0 '!.'
deps debian12-unquoted 1.0.1
expect "an os-release without quotes is read too" 0 '!.'
deps debian13 1.7.0
expect "Debian 13 passes with an 'untested' warning" 0 'warning: Debian GNU/Linux 13 \(trixie\) should work but is not tested'
deps ubuntu2404 1.3.2
expect "Ubuntu 24.04 passes with an 'untested' warning" 0 'Ubuntu 24.04.1 LTS should work but is not tested'
deps ubuntu2204 0.61.2
expect "Ubuntu 22.04 is refused, saying its meson is too old" fail \
  'unsupported system: Ubuntu 22.04.4 LTS ships meson 0.61, older than the '"$need" 'Supported: Debian 12'
deps debian11 1.0.1
expect "Debian 11 is refused with the supported list" fail \
  'unsupported system: Debian GNU/Linux 11 \(bullseye\) is not a release' 'Supported: Debian 12' \
  'SQLGATE_ALLOW_UNSUPPORTED_OS=1'
deps fedora 1.4.0
expect "a non-Debian system is refused, naming apt-get" fail \
  'Fedora Linux 40 \(Workstation Edition\) is not Debian or Ubuntu \(this script installs packages with apt-get\)'
deps no-such-file 1.0.1
expect "a missing os-release is refused clearly" fail "cannot read $work/no-such-file"
deps debian11 1.0.1 SQLGATE_ALLOW_UNSUPPORTED_OS=1
expect "SQLGATE_ALLOW_UNSUPPORTED_OS=1 turns the refusal into a warning" 0 \
  'warning: Debian GNU/Linux 11 \(bullseye\) is not a release.*going on because SQLGATE_ALLOW_UNSUPPORTED_OS=1'

# meson against meson.build's minimum (read from meson.build, as scripts/deps does).
[ -n "$need" ] && { passed=$((passed + 1)); echo "PASS meson.build states meson_version ($need)"; } ||
  { failed=$((failed + 1)); echo "FAIL meson.build states no meson_version"; }
deps debian12 "$need"
expect "meson exactly $need passes" 0 '!.'
deps debian12 0.62.1
expect "meson 0.62.1 is refused, naming both versions" fail \
  "meson 0\.62\.1 \($work/bin/meson\) is older than the $need meson.build requires"
deps debian12 0.9.9
expect "versions compare as numbers, not text (0.9.9 < $need)" fail 'is older than'
deps debian12 1.2.0rc1
expect "a pre-release suffix is ignored (1.2.0rc1)" 0 '!.'
deps debian12 "not a version"
expect "an unreadable meson version is an error" fail "cannot read meson's version"
# A PATH with the tools scripts/deps uses but no meson.
mkdir -p "$work/nomeson"
for t in bash dirname sed head; do ln -s "$(command -v "$t")" "$work/nomeson/$t"; done
rc=0
env -i "PATH=$work/nomeson" "HOME=$work" "SQLGATE_OS_RELEASE=$work/debian12" \
  "$work/nomeson/bash" "$root/scripts/deps" check >"$work/out" 2>&1 || rc=$?
expect "no meson at all is named as the problem" fail 'meson is not installed \(Debian package meson; needs >= '

# scripts/start with the fake meson: no -Dwerror, and a failed build shows
# the compiler's message and starts nothing. It runs from a copy of the
# scripts and meson.build, so whatever it does lands in $work, never in the
# real build directory.
src="$work/src"
mkdir -p "$src/scripts" && cp "$root/scripts/deps" "$root/scripts/start" "$src/scripts/" &&
  cp "$root/meson.build" "$src/"
start() {
  rc=0
  : >"$work/meson.log"
  env -i "PATH=$work/bin:$PATH" "HOME=$work" "SQLGATE_OS_RELEASE=$work/debian12" \
    "FAKE_MESON_VERSION=1.0.1" "FAKE_MESON_LOG=$work/meson.log" SQLGATE_DEPS_INSTALL=0 \
    "$@" "$src/scripts/start" --version >"$work/out" 2>&1 || rc=$?
}
start FAKE_MESON_COMPILE_FAILS=1
expect "scripts/start shows a failed build's compiler error and fails" fail \
  'fake compiler error for the test' 'build stopped' 'scripts/start: the build failed' '!^sqlgate '
cp "$work/meson.log" "$work/out"
expect "scripts/start sets up the build without -Dwerror (only scripts/test and CI use it)" any \
  "^setup $src/build $src" '!werror'
grep -- '-Dwerror=true' "$root/scripts/test" >"$work/out"
expect "scripts/test still builds with -Dwerror=true" any 'meson setup .*-Dwerror=true' 'meson configure .*-Dwerror=true'
# A build that works: meson stays quiet, the binary gets the arguments, and
# an existing build directory is used as it is (no second setup).
start
expect "a working build prints nothing of meson's and runs sqlgate with the arguments" 0 \
  '^fake sqlgate --version$' '!Linking' '!Meson'
cp "$work/meson.log" "$work/out"
expect "an existing build directory is not set up again" any '^compile -C ' '!^setup'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
