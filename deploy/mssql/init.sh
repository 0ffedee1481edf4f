#!/bin/bash
# Run once by docker-compose's db-init service, on the SQL Server image: gives
# sqlgate a login of its own on both servers instead of sa. The login owns
# nothing server-wide; in database "sqlgate" it may read and write tables
# (db_datareader, db_datawriter) and run procedures (EXECUTE). Idempotent: a
# second run only resets the password to MSSQL_SQLGATE_PASSWORD.
set -euo pipefail

# The untouched .env.example must not become a running stack: its passwords
# are public.
for var in MSSQL_SA_PASSWORD MSSQL_SQLGATE_PASSWORD; do
  if [[ "${!var,,}" == *change-me* ]]; then
    echo "db-init: $var still holds the .env.example placeholder; set a password of your own" >&2
    exit 2
  fi
done
case "$MSSQL_SQLGATE_PASSWORD" in
  *\'*) echo "db-init: MSSQL_SQLGATE_PASSWORD may not contain a single quote" >&2; exit 2 ;;
esac

sqlcmd=/opt/mssql-tools18/bin/sqlcmd
for host in core app; do
  "$sqlcmd" -C -b -S "$host" -U sa -P "$MSSQL_SA_PASSWORD" -v pw="$MSSQL_SQLGATE_PASSWORD" -Q "
IF DB_ID('sqlgate') IS NULL CREATE DATABASE sqlgate;
IF SUSER_ID('sqlgate') IS NULL
  CREATE LOGIN sqlgate WITH PASSWORD = '\$(pw)', DEFAULT_DATABASE = sqlgate, CHECK_POLICY = ON;
ELSE
  ALTER LOGIN sqlgate WITH PASSWORD = '\$(pw)';"
  "$sqlcmd" -C -b -S "$host" -U sa -P "$MSSQL_SA_PASSWORD" -d sqlgate -Q "
IF USER_ID('sqlgate') IS NULL CREATE USER sqlgate FOR LOGIN sqlgate;
ALTER ROLE db_datareader ADD MEMBER sqlgate;
ALTER ROLE db_datawriter ADD MEMBER sqlgate;
GRANT EXECUTE TO sqlgate;"
  echo "db-init: login sqlgate ready on $host"
done
