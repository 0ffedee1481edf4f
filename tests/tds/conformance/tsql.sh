#!/usr/bin/env bash
# Conformance: FreeTDS's own tsql (a client the project did not write) against
# the standalone TDS test server: login, types, errors, multiple result sets,
# row counts, a client-side timeout ("cancel"), knobs through the control
# channel. tsql sends only SQL batches (no RPC) and has no ATTENTION path: it
# drops the connection on a timeout; parameters and ATTENTION are covered by
# the db-lib Check suite and tedious.js.
#
# Usage: tsql.sh path/to/tds-testserver
# Prints one line per check and ends with "N passed, N failed"; exits non-zero
# on any failure.
set -u

server=${1:?usage: tsql.sh path/to/tds-testserver}
TSQL=${TSQL:-tsql}
passed=0
failed=0

if ! command -v "$TSQL" >/dev/null 2>&1; then
  echo "tsql not found: apt-get install freetds-bin" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/tds-tsql-XXXXXX")
pid=""
tls_pid=""
cleanup() {
  for p in $pid $tls_pid; do
    kill -TERM "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$dir"
}
trap cleanup EXIT

"$server" --user sa --password 'Conf0rm!' --database confdb --sqlite "$dir/db.sqlite" \
  --port-file "$dir/port" --control-port-file "$dir/cport" >"$dir/server.out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  [ -s "$dir/port" ] && [ -s "$dir/cport" ] && break
  sleep 0.1
done
if [ ! -s "$dir/port" ]; then
  echo "server did not start:" >&2
  cat "$dir/server.out" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
port=$(cat "$dir/port")
cport=$(cat "$dir/cport")

export LC_ALL=C.UTF-8
export FREETDSCONF=/dev/null

ok() {
  passed=$((passed + 1))
  echo "ok   $1"
}
ko() {
  failed=$((failed + 1))
  echo "FAIL $1"
  if [ -n "${2:-}" ]; then
    echo "     --- stdout:"
    sed 's/^/     /' "$dir/out"
    echo "     --- stderr:"
    sed 's/^/     /' "$dir/err"
  fi
}

# tsql_run VERSION [USER PASSWORD] < script: output in $dir/out and $dir/err.
tsql_run() {
  local ver=$1 user=${2:-sa} pass=${3:-Conf0rm!}
  TDSVER=$ver timeout 60 "$TSQL" -H 127.0.0.1 -p "$port" -U "$user" -P "$pass" -D confdb -o q \
    >"$dir/out" 2>"$dir/err"
}

# has FILE LINE: the file has exactly this line.
has() {
  grep -qxF -- "$2" "$dir/$1"
}

# control "COMMAND": one line to the control channel, reply in $reply.
control() {
  exec 3<>"/dev/tcp/127.0.0.1/$cport"
  printf '%s\n' "$1" >&3
  IFS= read -r reply <&3
  exec 3<&-
}

tab=$'\t'

# ---- login --------------------------------------------------------------------------
for ver in 7.1 7.2 7.3 7.4; do
  printf 'SELECT 40 + 2 AS answer\ngo\nexit\n' | tsql_run "$ver"
  if [ $? -eq 0 ] && has out "answer" && has out "42"; then ok "login and SELECT with TDS $ver"; else ko "login and SELECT with TDS $ver" x; fi
done

printf 'SELECT 1\ngo\nexit\n' | tsql_run 7.4 sa wrong
rc=$?
if [ $rc -ne 0 ] && grep -q "Msg 18456 (severity 14" "$dir/err" && ! grep -q wrong "$dir/err"; then
  ok "wrong password refused with 18456"
else
  ko "wrong password refused with 18456" x
fi

# ---- types ---------------------------------------------------------------------------
cat >"$dir/types.sql" <<'EOF'
CREATE TABLE t (i INT, bi BIGINT, si SMALLINT, ti TINYINT, b BIT, f FLOAT, r REAL, d DECIMAL(10,2), n NUMERIC(20,5), m MONEY, nv NVARCHAR(20), v VARCHAR(20), nm NVARCHAR(MAX), vb VARBINARY(10), dt DATE, tm TIME(3), d2 DATETIME2, dto DATETIMEOFFSET, g UNIQUEIDENTIFIER, od DATETIME)
go
INSERT INTO t VALUES (1, 9000000000, -5, 200, 1, 1.5, 2.25, 123.45, -1.00001, 12.3456, N'héllo wörld', 'abc', 'long text', X'DEADBEEF', '2024-01-31', '12:34:56.789', '2024-01-31 12:34:56.1234567', '2024-01-31 12:34:56 +02:00', '6F9619FF-8B86-D011-B42D-00C04FC964FF', '2024-01-31 01:02:03.123')
INSERT INTO t (i) VALUES (NULL)
go
SELECT * FROM t ORDER BY i DESC
go
exit
EOF
tsql_run 7.4 <"$dir/types.sql"
common="1${tab}9000000000${tab}-5${tab}200${tab}1${tab}1.5${tab}2.25${tab}123.45${tab}-1.00001${tab}12.3456${tab}héllo wörld${tab}abc${tab}long text${tab}deadbeef"
guid="6F9619FF-8B86-D011-B42D-00C04FC964FF"
nulls="NULL"
for _ in $(seq 2 20); do nulls="${nulls}${tab}NULL"; done
# tsql renders date/time types with its own fixed format at TDS 7.3+.
if has out "${common}${tab}Jan 31 2024 12:00AM${tab}Jan  1 1900 12:34PM${tab}Jan 31 2024 12:34PM${tab}Jan 31 2024 12:34PM${tab}${guid}${tab}Jan 31 2024 01:02AM" &&
  has out "$nulls"; then
  ok "every type and NULL with TDS 7.4"
else
  ko "every type and NULL with TDS 7.4" x
fi
printf 'SELECT * FROM t ORDER BY i DESC\ngo\nexit\n' | tsql_run 7.2
# Below 7.3, date and time types travel as text, as SQL Server sends them.
if has out "${common}${tab}2024-01-31${tab}12:34:56.789${tab}2024-01-31 12:34:56.1234567${tab}2024-01-31 12:34:56.0000000 +02:00${tab}${guid}${tab}Jan 31 2024 01:02AM" &&
  has out "$nulls"; then
  ok "every type and NULL with TDS 7.2"
else
  ko "every type and NULL with TDS 7.2" x
fi
printf "SELECT CAST(replace(hex(zeroblob(6000)), '00', 'xy') AS NVARCHAR(MAX)) AS big\ngo\nexit\n" | tsql_run 7.4
if [ "$(sed -n 2p "$dir/out" | wc -c)" -eq 12001 ]; then ok "12000-character NVARCHAR(MAX) over several packets"; else ko "12000-character NVARCHAR(MAX) over several packets"; fi

# TEXT, NTEXT, IMAGE (text pointers at every version) and XML (0xF1 PLP from 7.2, NTEXT
# below), as SQL Server sends them.
cat >"$dir/legacy.sql" <<'EOF'
CREATE TABLE lt (tx TEXT, nt NTEXT, im IMAGE, x XML)
go
INSERT INTO lt VALUES ('café', N'日本', X'00FF', N'<a>é</a>'), (NULL, NULL, NULL, NULL)
go
exit
EOF
tsql_run 7.4 <"$dir/legacy.sql"
for ver in 7.1 7.4; do
  printf 'SELECT * FROM lt\ngo\nexit\n' | tsql_run "$ver"
  if has out "tx${tab}nt${tab}im${tab}x" && has out "café${tab}日本${tab}00ff${tab}<a>é</a>" &&
    has out "NULL${tab}NULL${tab}NULL${tab}NULL"; then
    ok "TEXT, NTEXT, IMAGE and XML with TDS $ver"
  else
    ko "TEXT, NTEXT, IMAGE and XML with TDS $ver" x
  fi
done

# ---- multiple result sets and counts ------------------------------------------------------
cat >"$dir/multi.sql" <<'EOF'
CREATE TABLE c (x INT)
INSERT INTO c VALUES (1), (2), (3)
SELECT x FROM c ORDER BY x SELECT 'two' AS b, 2.5 AS f
go
exit
EOF
tsql_run 7.4 <"$dir/multi.sql"
if has out "x" && has out "3" && has out "b${tab}f" && has out "two${tab}2.5"; then
  ok "two result sets in one batch"
else
  ko "two result sets in one batch" x
fi
# tsql prints "(N rows affected)" only after rows; @@ROWCOUNT shows the count.
printf 'UPDATE c SET x = x + 1 WHERE x > 1\nSELECT @@ROWCOUNT AS n\ngo\nexit\n' | tsql_run 7.4
if has out "n" && has out "2"; then ok "row count of an UPDATE"; else ko "row count of an UPDATE" x; fi

# ---- errors --------------------------------------------------------------------------------
printf 'SELECT 1\nSELECT * FROM nosuch\ngo\nexit\n' | tsql_run 7.4
if grep -q "Msg 208 (severity 16, state 1) from sqlgate-tds Line 2" "$dir/err" && grep -q "Invalid object name 'nosuch'." "$dir/err"; then
  ok "error 208 with severity and line"
else
  ko "error 208 with severity and line" x
fi
printf "SELEC 1\ngo\nRAISERROR('custom %%s', 15, 3, 'text')\ngo\nTHROW 50001, 'thrown', 2\ngo\nexit\n" | tsql_run 7.1
if grep -q "Msg 102 (severity 16" "$dir/err" && grep -q "Msg 50000 (severity 15, state 3)" "$dir/err" &&
  grep -q "custom text" "$dir/err" && grep -q "Msg 50001 (severity 16, state 2)" "$dir/err"; then
  ok "syntax error, RAISERROR and THROW (TDS 7.1)"
else
  ko "syntax error, RAISERROR and THROW (TDS 7.1)" x
fi

# ---- cancel: a client-side timeout abandons the query; the server keeps serving -------------
cat >"$dir/freetds.conf" <<EOF
[global]
	query timeout = 1
[tdstest]
	host = 127.0.0.1
	port = $port
	tds version = 7.4
EOF
start=$(date +%s)
printf "WAITFOR DELAY '00:00:20'\ngo\nexit\n" | FREETDSCONF="$dir/freetds.conf" timeout 60 "$TSQL" -S tdstest -U sa -P 'Conf0rm!' -D confdb >"$dir/out" 2>"$dir/err"
elapsed=$(($(date +%s) - start))
timed_out=no
grep -q "Error 20003" "$dir/err" && timed_out=yes
active=""
for _ in $(seq 1 50); do
  control STATS
  active=$(printf '%s\n' "$reply" | sed -n 's/.*connections_active=\([0-9]*\).*/\1/p')
  [ "$active" = "0" ] && break
  sleep 0.1
done
printf 'SELECT 5\ngo\nexit\n' | tsql_run 7.4
if [ "$timed_out" = yes ] && [ "$elapsed" -lt 15 ] && [ "$active" = "0" ] && has out "5"; then
  ok "query timeout: client gives up, server frees the connection and serves the next"
else
  ko "query timeout: client gives up, server frees the connection and serves the next (timeout seen: $timed_out, elapsed ${elapsed}s, active ${active})" x
fi

# ---- knobs through the control channel ---------------------------------------------------------
control "SET raise_error 50555"
printf 'SELECT 1\ngo\nexit\n' | tsql_run 7.4
if [ "$reply" = "OK" ] && grep -q "Msg 50555" "$dir/err"; then ok "control channel: raise_error"; else ko "control channel: raise_error" x; fi
control "RESET"
control "SET refuse_login 1"
printf 'SELECT 1\ngo\nexit\n' | tsql_run 7.4
if [ $? -ne 0 ] && grep -q "Msg 18456" "$dir/err"; then ok "control channel: refuse_login"; else ko "control channel: refuse_login" x; fi
control "GET refuse_login"
if [ "$reply" = "OK 1" ]; then ok "control channel: GET"; else ko "control channel: GET (got '$reply')"; fi
control "RESET"
printf "EXEC sqlgate_test_knob 'query_delay_ms', 7\ngo\nexit\n" | tsql_run 7.4
control "GET query_delay_ms"
if [ "$reply" = "OK 7" ]; then ok "knob set with EXEC sqlgate_test_knob"; else ko "knob set with EXEC sqlgate_test_knob (got '$reply')" x; fi
control "RESET"
control "STATS"
case "$reply" in
OK\ connections_opened=*logins=*) ok "control channel: STATS" ;;
*) ko "control channel: STATS (got '$reply')" ;;
esac

# ---- TLS inside TDS ----------------------------------------------------------------------------
# A second server with a certificate (made now) and SQL Server's default
# ENCRYPTION answer, or one that forces encryption. tsql takes encryption
# settings only from freetds.conf: one section per case.
certs="$dir/certs"
if ! "$(dirname "$0")/../make-test-certs.sh" "$certs"; then
  ko "make the test certificates"
fi

# tls_start MODE CERT: the TLS server, its ports in $tls_port and $tls_cport.
tls_start() {
  [ -n "$tls_pid" ] && { kill -TERM "$tls_pid"; wait "$tls_pid" 2>/dev/null; }
  rm -f "$dir/tport" "$dir/tcport"
  "$server" --user sa --password 'Conf0rm!' --database confdb --sqlite "$dir/tls.sqlite" \
    --port-file "$dir/tport" --control-port-file "$dir/tcport" --encrypt "$1" \
    --cert "$certs/$2.pem" --key "$certs/$2.key" >"$dir/tls-server.out" 2>&1 &
  tls_pid=$!
  for _ in $(seq 1 100); do
    [ -s "$dir/tport" ] && [ -s "$dir/tcport" ] && break
    sleep 0.1
  done
  tls_port=$(cat "$dir/tport")
  tls_cport=$(cat "$dir/tcport")
}

# tls_stat NAME: a counter of the TLS server, in $stat.
tls_stat() {
  exec 3<>"/dev/tcp/127.0.0.1/$tls_cport"
  printf 'STATS\n' >&3
  IFS= read -r reply <&3
  exec 3<&-
  stat=$(printf '%s\n' "$reply" | tr ' ' '\n' | sed -n "s/^$1=//p")
}

# tls_run PORT ENCRYPTION [CA-FILE] < script: tsql through a freetds.conf section.
tls_run() {
  {
    printf '[tls]\n\thost = 127.0.0.1\n\tport = %s\n\ttds version = 7.4\n\tencryption = %s\n' "$1" "$2"
    [ -n "${3:-}" ] && printf '\tca file = %s\n' "$3"
  } >"$dir/freetds.conf"
  FREETDSCONF="$dir/freetds.conf" timeout 60 "$TSQL" -S tls -U sa -P 'Conf0rm!' -D confdb -o q \
    >"$dir/out" 2>"$dir/err"
}

tls_start off server
printf 'SELECT 40 + 2 AS answer\ngo\nSELECT 1 AS x\ngo\nexit\n' | tls_run "$tls_port" request
rc=$?
tls_stat sessions_login_only; lo=$stat
tls_stat tls_records_after_login; recs=$stat
tls_stat clear_packets_after_login; clear=$stat
if [ $rc -eq 0 ] && has out "42" && [ "$lo" = 1 ] && [ "$recs" = 0 ] && [ "$clear" -ge 2 ]; then
  ok "encryption = request, server ENCRYPT_OFF: login-only TLS, then clear"
else
  ko "encryption = request, server ENCRYPT_OFF: login-only TLS, then clear (login-only $lo, records $recs, clear $clear)" x
fi

printf 'SELECT 40 + 2 AS answer\ngo\nSELECT 1 AS x\ngo\nexit\n' | tls_run "$tls_port" require "$certs/ca.pem"
rc=$?
tls_stat sessions_encrypted; enc=$stat
tls_stat tls_records_after_login; recs=$stat
tls_stat clear_packets_after_login
if [ $rc -eq 0 ] && has out "42" && [ "$enc" = 1 ] && [ "$recs" -ge 2 ] && [ "$stat" = "$clear" ]; then
  ok "encryption = require with a CA file: the whole session in TLS"
else
  ko "encryption = require with a CA file: the whole session in TLS (encrypted $enc, records $recs, clear $stat)" x
fi

for cert in other wronghost; do
  tls_start off "$cert"
  printf 'SELECT 1\ngo\nexit\n' | tls_run "$tls_port" require "$certs/ca.pem"
  rc=$?
  tls_stat login7_encrypted; l7=$stat
  tls_stat tls_failures
  if [ $rc -ne 0 ] && [ "$l7" = 0 ] && [ "$stat" -ge 1 ]; then
    ok "encryption = require refuses a certificate ($cert) not for this CA and host"
  else
    ko "encryption = require refuses a certificate ($cert) not for this CA and host (LOGIN7 $l7, failures $stat)" x
  fi
done

tls_start on server
printf 'SELECT 1\ngo\nexit\n' | tls_run "$tls_port" off
rc=$?
tls_stat tls_refused
if [ $rc -ne 0 ] && [ "$stat" = 1 ]; then
  ok "encryption = off refused by a server that forces encryption"
else
  ko "encryption = off refused by a server that forces encryption (refused $stat)" x
fi

control "STATS"
before=$(printf '%s\n' "$reply" | tr ' ' '\n' | sed -n 's/^logins=//p')
printf 'SELECT 1\ngo\nexit\n' | tls_run "$port" require
rc=$?
control "STATS"
after=$(printf '%s\n' "$reply" | tr ' ' '\n' | sed -n 's/^logins=//p')
if [ $rc -ne 0 ] && [ "$before" = "$after" ]; then
  ok "encryption = require fails against a server without TLS"
else
  ko "encryption = require fails against a server without TLS (logins $before -> $after)" x
fi

# ---- stop on SIGTERM ---------------------------------------------------------------------------
kill -TERM "$pid"
stopped=no
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then stopped=yes; break; fi
  sleep 0.1
done
wait "$pid" 2>/dev/null
status=$?
pid=""
if [ "$stopped" = yes ] && [ "$status" -eq 0 ]; then ok "server stops on SIGTERM with status 0"; else ko "server stops on SIGTERM with status 0 (status $status)"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
