#!/bin/bash
# docker-compose.yml's one-shot service db-init, on the SQL Server image (its
# sqlcmd, mssql-tools18): for each of the servers core and app,
#   1. server.sql as sa: database <name>, login sqlgate_<name> with the
#      password MSSQL_<NAME>_PASSWORD, and in that database only a user with
#      db_datareader and db_datawriter (nothing server-wide);
#   2. <name>.sql as sa in that database, the demo schema and rows, the first
#      time only (when its table does not exist yet), so rows you changed
#      survive a restart.
# sqlgate logs in as sqlgate_<name> (.env.example: <NAME>_DB_USER), never sa.
# Exits non-zero on the first error, which keeps sqlgate from starting
# (depends_on: service_completed_successfully).
#
# Passwords never reach a command line: sqlcmd reads sa's from SQLCMDPASSWORD
# and the scripting variables of server.sql from the environment.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sqlcmd="${SQLCMD:-/opt/mssql-tools18/bin/sqlcmd}"

# The untouched deploy/compose.env.example must not become a running stack:
# its passwords are public.
for var in MSSQL_SA_PASSWORD MSSQL_CORE_PASSWORD MSSQL_APP_PASSWORD; do
  if [ -z "${!var:-}" ]; then
    echo "db-init: $var is not set" >&2
    exit 2
  fi
  if [[ "${!var,,}" == *change-me* ]]; then
    echo "db-init: $var still holds the deploy/compose.env.example placeholder; set a password of your own" >&2
    exit 2
  fi
done
export SQLCMDPASSWORD="$MSSQL_SA_PASSWORD"

# database:table the demo seed creates (its presence means "already seeded").
for entry in core:users app:orders; do
  db="${entry%%:*}"
  table="${entry#*:}"
  host="$db" # the compose service of the same name
  pw_var="MSSQL_${db^^}_PASSWORD"
  # Inside a T-SQL string literal in server.sql.
  case "${!pw_var}" in
    *\'*)
      echo "db-init: $pw_var may not contain a single quote" >&2
      exit 2
      ;;
  esac
  DB_NAME="$db" LOGIN_NAME="sqlgate_$db" LOGIN_PASSWORD="${!pw_var}" \
    "$sqlcmd" -C -b -S "$host" -U sa -i "$here/server.sql"
  seeded="$("$sqlcmd" -C -b -h -1 -W -S "$host" -U sa -d "$db" \
    -Q "SET NOCOUNT ON; SELECT CASE WHEN OBJECT_ID(N'dbo.$table', N'U') IS NULL THEN 0 ELSE 1 END")"
  seeded="$(tr -d '[:space:]' <<<"$seeded")"
  if [ "$seeded" = 0 ]; then
    "$sqlcmd" -C -b -S "$host" -U sa -d "$db" -i "$here/$db.sql"
    echo "db-init: $host: database $db, login sqlgate_$db, demo rows created"
  elif [ "$seeded" = 1 ]; then
    echo "db-init: $host: database $db and login sqlgate_$db ready (dbo.$table exists, not seeded again)"
  else
    echo "db-init: $host: unexpected answer '$seeded' when looking for dbo.$table" >&2
    exit 1
  fi
done
