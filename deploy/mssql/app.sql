-- Demo schema and rows of database app: the rows the embedded SQLite default
-- starts with (src/service/demo.c). Run like core.sql (see there): by
-- init.sh as sa when dbo.orders does not exist yet, and by
-- tests/compose/check.sh against the TDS test server.
--
-- amount is DECIMAL(10,2), so SQL Server answers "42.50" where the embedded
-- SQLite answers "42.5" (SQLite keeps no scale): the same number, written
-- with the column's two decimals. paid is BIT (true/false in JSON, as the
-- embedded BOOLEAN).
CREATE TABLE dbo.orders (
    id INT NOT NULL PRIMARY KEY,
    user_id INT NOT NULL,
    item NVARCHAR(200) NOT NULL,
    amount DECIMAL(10,2) NOT NULL,
    paid BIT NOT NULL,
    created_at NVARCHAR(30) NULL
);
INSERT INTO dbo.orders (id, user_id, item, amount, paid, created_at) VALUES
    (1, 1, N'Analytical Engine manual', 42.50, 1, N'2026-02-01T10:00:00Z'),
    (2, 2, N'COBOL compiler', 1999.99, 0, N'2026-02-03T16:45:00Z'),
    (3, 1, N'Punched cards (box of 500)', 12.00, 1, N'2026-02-07T11:20:00Z');
GO
