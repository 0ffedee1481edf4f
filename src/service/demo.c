/* demo: see demo.h. The seed runs through the library like any query. */
#include "demo.h"

#include <string.h>
#include <sys/stat.h>

static const char core_sql[] =
    "CREATE TABLE IF NOT EXISTS users (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  email TEXT,\n"
    "  created_at TEXT\n"
    ");\n"
    "INSERT INTO users (id, name, email, created_at) VALUES\n"
    "  (1, 'Ada Lovelace', 'ada@example.com', '2026-01-05T09:30:00Z'),\n"
    "  (2, 'Grace Hopper', 'grace@example.com', '2026-01-12T14:00:00Z'),\n"
    "  (3, 'Alan Turing', 'alan@example.com', '2026-01-20T08:15:00Z');\n";

static const char app_sql[] =
    "CREATE TABLE IF NOT EXISTS orders (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  user_id INTEGER NOT NULL,\n"
    "  item TEXT NOT NULL,\n"
    "  amount DECIMAL(10,2) NOT NULL,\n"
    "  paid BOOLEAN NOT NULL,\n"
    "  created_at TEXT\n"
    ");\n"
    "INSERT INTO orders (id, user_id, item, amount, paid, created_at) VALUES\n"
    "  (1, 1, 'Analytical Engine manual', '42.50', 1, '2026-02-01T10:00:00Z'),\n"
    "  (2, 2, 'COBOL compiler', '1999.99', 0, '2026-02-03T16:45:00Z'),\n"
    "  (3, 1, 'Punched cards (box of 500)', '12.00', 1, '2026-02-07T11:20:00Z');\n";

bool demo_needs_seed(const sg_config *cfg, const char *name)
{
    const sg_db_config *dc = sg_config_find(cfg, name);
    struct stat st;
    return dc != NULL && dc->path != NULL && stat(dc->path, &st) != 0;
}

int demo_seed(sg_registry *reg, const char *name, sg_err *err)
{
    const char *sql = strcmp(name, "core") == 0 ? core_sql : app_sql;
    static const sg_sink ignore = {0};
    return sg_registry_execute(reg, name, sql, NULL, 0, &ignore, NULL, NULL, err);
}
