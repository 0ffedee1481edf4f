-- Server-level setup for one database of the compose stack, run by init.sh as
-- sa with sqlcmd on that database's server. sqlcmd takes the scripting
-- variables from init.sh's environment:
--   $(DB_NAME)         the database, created when missing
--   $(LOGIN_NAME)      sqlgate's login for it (SQL Server authentication)
--   $(LOGIN_PASSWORD)  its password (init.sh refuses a single quote in it)
--
-- Least privilege: the login gets no server role and no server permission; in
-- its own database it is a user with db_datareader and db_datawriter (read
-- and write every table), nothing else: no DDL, no EXECUTE on procedures, no
-- other database. Grant more in your own schema scripts when your queries
-- need it (for example GRANT EXECUTE ON SCHEMA::dbo TO ...).
--
-- Idempotent: on a second run the database and the user stay as they are and
-- only the password is set again (so changing it in .env takes effect).
--
-- Never run against a SQL Server engine by this project's tests (none can run
-- on its build machines), nor against its TDS test server, which does not
-- implement logins, CREATE DATABASE or IF; tests/compose/check.sh only checks
-- this file's text (tests/compose/compose_checks.py, "init").

IF DB_ID(N'$(DB_NAME)') IS NULL
    CREATE DATABASE [$(DB_NAME)];
GO

IF SUSER_ID(N'$(LOGIN_NAME)') IS NULL
    CREATE LOGIN [$(LOGIN_NAME)]
        WITH PASSWORD = N'$(LOGIN_PASSWORD)', DEFAULT_DATABASE = [$(DB_NAME)],
             CHECK_POLICY = ON;
ELSE
    ALTER LOGIN [$(LOGIN_NAME)] WITH PASSWORD = N'$(LOGIN_PASSWORD)';
GO

USE [$(DB_NAME)];
GO

IF USER_ID(N'$(LOGIN_NAME)') IS NULL
    CREATE USER [$(LOGIN_NAME)] FOR LOGIN [$(LOGIN_NAME)];
ALTER ROLE db_datareader ADD MEMBER [$(LOGIN_NAME)];
ALTER ROLE db_datawriter ADD MEMBER [$(LOGIN_NAME)];
GO
