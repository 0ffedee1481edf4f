-- Demo schema and rows of database core: the rows the embedded SQLite
-- default starts with (src/service/demo.c), so the README's curl lines answer
-- the same against the compose stack. init.sh runs it as sa in database core
-- when dbo.users does not exist yet; tests/compose/check.sh runs it with
-- FreeTDS's tsql against the project's TDS test server and compares what
-- sqlgate then answers with the embedded default's answers.
--
-- Plain statements only (no IF, no variables, no TOP): the subset both SQL
-- Server and the TDS test server understand. created_at is text, as in the
-- embedded demo, so the answers match; a real schema would use
-- datetimeoffset.
CREATE TABLE dbo.users (
    id INT NOT NULL PRIMARY KEY,
    name NVARCHAR(100) NOT NULL,
    email NVARCHAR(254) NULL,
    created_at NVARCHAR(30) NULL
);
INSERT INTO dbo.users (id, name, email, created_at) VALUES
    (1, N'Ada Lovelace', N'ada@example.com', N'2026-01-05T09:30:00Z'),
    (2, N'Grace Hopper', N'grace@example.com', N'2026-01-12T14:00:00Z'),
    (3, N'Alan Turing', N'alan@example.com', N'2026-01-20T08:15:00Z');
GO
