/* config_rules: the service-wide rules of the configuration loader.
 *
 * The SQLGATE_* variables that are more than a scalar: the database list and
 * mode (each database then loads in config_db.c), the default alias, the
 * listen address, API tokens and the scoped tokens file, the allowed Host
 * names and the HTTPS files. The anonymous-listen rule, which spans several of
 * them, is judged last, in sg_config_load (config.c).
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- Databases and modes ------------------------------------------------------ */

static void name_upper(char *dst, size_t size, const char *name)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < size; i++)
        dst[i] = (char)toupper((unsigned char)name[i]);
    dst[i] = '\0';
}

static bool reserved(const char *s)
{
    return strcmp(s, "default") == 0 || strcmp(s, "live") == 0 || strcmp(s, "ready") == 0;
}

typedef char db_name[SG_NAME_MAX + 1];

/* Splits SQLGATE_DATABASES into names[]; returns how many are usable. Bad
 * items are reported and left out, so the good ones still get checked. */
static size_t parse_names(loader *ld, const char *var, const char *list, db_name *names)
{
    size_t count = 0, item = 0;
    const char *p = list;
    char q[QUOTE_BUF];
    for (;;) {
        size_t n = strcspn(p, ",");
        const char *s = p;
        size_t len = n;
        item++;
        while (len > 0 && isspace((unsigned char)*s)) {
            s++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)s[len - 1]))
            len--;
        char tmp[ECHO_MAX + 1];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(len < ECHO_MAX ? len : ECHO_MAX), s);
        if (len == 0) {
            cfg_add_error(ld, var, "item %zu is empty", item);
        } else if (!sg_name_valid(s, len)) {
            cfg_add_error(ld, var,
                          "%s is not a valid database name (a lower-case letter, then up to 62 of "
                          "a-z, 0-9, _)",
                          cfg_quote(q, sizeof q, tmp));
        } else if (reserved(tmp)) {
            cfg_add_error(ld, var, "%s is a reserved name (default, live and ready are taken)",
                          cfg_quote(q, sizeof q, tmp));
        } else {
            bool dup = false;
            for (size_t i = 0; i < count; i++)
                dup = dup || strcmp(names[i], tmp) == 0;
            if (dup) {
                cfg_add_error(ld, var, "%s is listed more than once", cfg_quote(q, sizeof q, tmp));
            } else if (count == DB_COUNT_MAX) {
                cfg_add_error(ld, var, "more than %d databases", DB_COUNT_MAX);
                break;
            } else {
                memcpy(names[count++], tmp, len + 1);
            }
        }
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    return count;
}

static bool legacy_set(loader *ld)
{
    char var[VAR_NAME_MAX];
    for (size_t i = 0; i < DV_COUNT_; i++) {
        snprintf(var, sizeof var, "DB_%s", cfg_db_vars[i].name);
        if (cfg_get(ld, var) != NULL)
            return true;
    }
    return false;
}

void cfg_load_databases(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *list = sv[SV_DATABASES].text;
    db_name *names = NULL;
    size_t n = 0;

    if (list != NULL) {
        cfg->mode = SG_MODE_NAMED;
        names = calloc(DB_COUNT_MAX, sizeof *names);
        if (names == NULL) {
            ld->oom = true;
            return;
        }
        n = parse_names(ld, cfg_service_vars[SV_DATABASES].name, list, names);
    } else if (legacy_set(ld)) {
        cfg->mode = SG_MODE_LEGACY;
        n = 1;
    } else {
        cfg->mode = SG_MODE_EMBEDDED;
        n = 2;
    }
    if (n > 0) {
        cfg->databases = cfg_owned_add(ld, calloc(n, sizeof *cfg->databases));
        if (cfg->databases == NULL)
            goto done;
    }

    switch (cfg->mode) {
    case SG_MODE_NAMED:
        for (size_t i = 0; i < n; i++) {
            char prefix[SG_NAME_MAX + 8];
            name_upper(prefix, sizeof prefix, names[i]);
            memcpy(prefix + strlen(names[i]), "_DB_", 5);
            cfg_load_db(ld, &cfg->databases[i], names[i], prefix, NULL);
        }
        break;
    case SG_MODE_LEGACY:
        cfg_load_db(ld, &cfg->databases[0], "default", "DB_", NULL);
        break;
    case SG_MODE_EMBEDDED:
        cfg_load_db(ld, &cfg->databases[0], "core", "CORE_DB_", "./var/core.db");
        cfg_load_db(ld, &cfg->databases[1], "app", "APP_DB_", "./var/app.db");
        break;
    }
    cfg->n_databases = n;
done:
    free(names);
}

void cfg_load_default(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *want = sv[SV_DEFAULT_DATABASE].text;
    char q[QUOTE_BUF];

    if (want == NULL) {
        if (cfg->n_databases == 1 || cfg->mode == SG_MODE_EMBEDDED)
            cfg->default_name = cfg->databases[0].name;
        return;
    }
    for (size_t i = 0; i < cfg->n_databases; i++) {
        if (strcmp(cfg->databases[i].name, want) == 0) {
            cfg->default_name = cfg->databases[i].name;
            return;
        }
    }
    char names[512];
    size_t o = 0;
    names[0] = '\0';
    for (size_t i = 0; i < cfg->n_databases && o < sizeof names; i++) {
        int w =
            snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", cfg->databases[i].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    cfg_add_error(ld, cfg_service_vars[SV_DEFAULT_DATABASE].name,
                  "%s is not a configured database (configured: %s)", cfg_quote(q, sizeof q, want),
                  cfg->n_databases ? names : "none");
}

/* --- Service-wide ------------------------------------------------------------- */

static bool is_ipv4(const char *s)
{
    unsigned char buf[4];
    return inet_pton(AF_INET, s, buf) == 1;
}

static bool is_loopback(const char *h)
{
    unsigned char a[16];
    if (strcasecmp(h, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, h, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, h, a) == 1) {
        static const unsigned char one[16] = {[15] = 1};
        static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
        return memcmp(a, one, 16) == 0 || (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    }
    return false;
}

/* host:port, [v6]:port; the host is kept without brackets. */
void cfg_load_listen(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = cfg_service_vars[SV_LISTEN].name;
    const char *s =
        sv[SV_LISTEN].text != NULL ? sv[SV_LISTEN].text : cfg_service_vars[SV_LISTEN].def;
    char q[QUOTE_BUF];
    const char *host, *port;
    size_t hlen;

    cfg_quote(q, sizeof q, s);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            cfg_add_error(ld, var, "must be host:port or [ipv6]:port (got %s)", q);
            return;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) {
            cfg_add_error(ld, var, "must be host:port, e.g. 127.0.0.1:8080 (got %s)", q);
            return;
        }
        host = s;
        hlen = (size_t)(colon - s);
        port = colon + 1;
        if (memchr(host, ':', hlen) != NULL) {
            cfg_add_error(ld, var, "an IPv6 address goes in brackets, e.g. [::1]:8080 (got %s)", q);
            return;
        }
    }
    if (cfg_parse_port(port, strlen(port), 0, &cfg->listen_port) != 0)
        cfg_add_error(ld, var, "the port must be an integer from 0 to 65535 (got %s)", q);
    if (hlen == 0) {
        cfg_add_error(ld, var, "the host is missing; use 0.0.0.0:PORT for every interface (got %s)",
                      q);
        return;
    }
    char *h = cfg_dup_range(ld, host, hlen);
    if (h == NULL)
        return;
    bool ok = s[0] == '[' ? cfg_is_ipv6(h) : (is_ipv4(h) || cfg_host_ok(h, false));
    if (!ok) {
        /* listen_host stays NULL, which also keeps the anonymous rule quiet. */
        cfg_add_error(ld, var, "the host is not a valid name or address (got %s)", q);
        free(h);
        return;
    }
    /* The listener binds an address and never resolves a name, so a start
     * and --check-config (both built on this loader) refuse one alike. */
    if (s[0] != '[' && !is_ipv4(h) && strcasecmp(h, "localhost") != 0) {
        cfg_add_error(ld, var,
                      "a host name is not resolved; give an IP address (0.0.0.0 for every "
                      "interface), [IPv6] or localhost (got %s)",
                      q);
        free(h);
        return;
    }
    cfg->listen_loopback = is_loopback(h);
    cfg->listen_host = cfg_owned_add(ld, h);
}

/* Splits comma-separated tokens into cfg->api_tokens. Tokens are secrets:
 * problems are described by position only. Returns false after an error. */
static bool split_tokens(loader *ld, const char *var, const char *text)
{
    sg_config *cfg = &ld->box->pub;
    size_t count = 1;
    bool ok = true;
    for (const char *p = text; *p != '\0'; p++)
        count += *p == ',';
    while (isspace((unsigned char)*text))
        text++;
    size_t total = strlen(text);
    while (total > 0 && isspace((unsigned char)text[total - 1]))
        total--;
    if (total == 0) {
        cfg_add_error(ld, var, "contains no tokens");
        return false;
    }
    char **tokens = cfg_owned_add(ld, calloc(count, sizeof *tokens));
    if (tokens == NULL)
        return false;
    size_t n = 0, item = 0;
    const char *p = text, *end = text + total;
    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c != NULL ? c : end;
        const char *s = p;
        const char *weak;
        item++;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        bool clean = true;
        for (const char *t = s; t < e; t++)
            clean = clean && *t > 0x20 && *t < 0x7f;
        if (s == e) {
            cfg_add_error(ld, var, "token %zu is empty", item);
            ok = false;
        } else if (!clean) {
            cfg_add_error(ld, var, "token %zu contains a space, control or non-ASCII character",
                          item);
            ok = false;
        } else if ((weak = sg_token_weakness(s, (size_t)(e - s))) != NULL) {
            cfg_add_error(ld, var, "token %zu %s; generate one with e.g. `openssl rand -hex 32`",
                          item, weak);
            ok = false;
        } else {
            char *t = cfg_dup_range(ld, s, (size_t)(e - s));
            if (t == NULL || cfg_owned_add(ld, t) == NULL)
                return false;
            tokens[n++] = t;
        }
        if (c == NULL)
            break;
        p = c + 1;
    }
    cfg->api_tokens = n > 0 ? tokens : NULL;
    cfg->n_api_tokens = n;
    return ok;
}

/* Returns false when the token settings are wrong (the anonymous rule is
 * then not judged: the operator clearly meant to set tokens). */
bool cfg_load_tokens(loader *ld, const value *sv)
{
    const char *inline_tokens = sv[SV_API_TOKENS].text;
    const char *file = sv[SV_API_TOKENS_FILE].text;
    const char *file_var = cfg_service_vars[SV_API_TOKENS_FILE].name;
    if (inline_tokens != NULL && file != NULL) {
        cfg_add_error(ld, file_var, "cannot be combined with %s; set one of them",
                      cfg_service_vars[SV_API_TOKENS].name);
        return false;
    }
    if (inline_tokens != NULL)
        return split_tokens(ld, cfg_service_vars[SV_API_TOKENS].name, inline_tokens);
    if (file == NULL)
        return true;
    char *buf = NULL;
    size_t len = 0;
    int rc = sg_file_read(file, TOKENS_FILE_MAX, true, &buf, &len);
    if (rc != 0) {
        cfg_file_error(ld, file_var, file, rc, errno, TOKENS_FILE_MAX);
        return false;
    }
    bool ok = split_tokens(ld, file_var, buf);
    sg_wipe(buf, len);
    free(buf);
    return ok;
}

/* The `default` alias and database names as a token's db= may write them. */
static const char *resolve_db(void *ud, const char *name)
{
    const sg_config *cfg = ud;
    if (strcmp(name, "default") == 0 && sg_config_find(cfg, name) == NULL)
        return cfg->default_name;
    const sg_db_config *db = sg_config_find(cfg, name);
    return db != NULL ? db->name : NULL;
}

/* Builds cfg->tokens from the API tokens (every scope) and the scoped tokens
 * file. Returns false after an error. */
bool cfg_load_scoped_tokens(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = cfg_service_vars[SV_TOKENS_FILE].name;
    ld->box->tokens = sg_tokens_new();
    cfg->tokens = ld->box->tokens;
    if (ld->box->tokens == NULL) {
        ld->oom = true;
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < cfg->n_api_tokens; i++) {
        sg_err err;
        const char *t = cfg->api_tokens[i];
        if (sg_tokens_add(ld->box->tokens, t, strlen(t), SG_SCOPE_EVERY, &err) != 0) {
            if (err.code == SG_INTERNAL)
                ld->oom = true;
            else
                cfg_add_error(ld, cfg_service_vars[SV_API_TOKENS].name, "token %zu is given twice",
                              i + 1);
            ok = false;
        }
    }
    /* From here on only the digests exist: the plain tokens are wiped. */
    for (size_t i = 0; i < cfg->n_api_tokens; i++)
        sg_wipe(cfg->api_tokens[i], strlen(cfg->api_tokens[i]));
    cfg->api_tokens = NULL;
    const char *file = sv[SV_TOKENS_FILE].text;
    if (file == NULL)
        return ok;
    char *buf = NULL, *errors = NULL;
    size_t len = 0;
    int rc = sg_file_read(file, TOKENS_FILE_MAX, true, &buf, &len);
    if (rc != 0) {
        cfg_file_error(ld, var, file, rc, errno, TOKENS_FILE_MAX);
        return false;
    }
    rc = sg_tokens_parse(ld->box->tokens, buf, len, file, resolve_db, cfg, &errors);
    sg_wipe(buf, len);
    free(buf);
    if (rc == 0)
        return ok;
    if (errors == NULL) {
        ld->oom = true;
        return false;
    }
    for (char *line = errors; *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        cfg_add_error(ld, var, "%s", line);
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    free(errors);
    return false;
}

/* SQLGATE_ALLOWED_HOSTS: host, host:port, [v6] or [v6]:port, comma-separated;
 * kept lower-case so that the HTTP layer compares bytes. */
void cfg_load_allowed_hosts(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *var = cfg_service_vars[SV_ALLOWED_HOSTS].name;
    const char *text = sv[SV_ALLOWED_HOSTS].text;
    if (text == NULL)
        return;
    char **hosts = cfg_owned_add(ld, calloc(ALLOWED_HOSTS_MAX, sizeof *hosts));
    if (hosts == NULL)
        return;
    size_t n = 0;
    for (const char *p = text; *p != '\0';) {
        const char *c = strchr(p, ',');
        const char *e = c != NULL ? c : p + strlen(p);
        const char *b = p;
        p = c != NULL ? c + 1 : e;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (b == e)
            continue;
        char q[QUOTE_BUF];
        char *item = cfg_owned_add(ld, cfg_dup_range(ld, b, (size_t)(e - b)));
        if (item == NULL)
            return;
        cfg_quote(q, sizeof q, item);
        for (char *t = item; *t != '\0'; t++)
            *t = (char)tolower((unsigned char)*t);
        /* Split off an optional port, then judge the host part. */
        char host[HOST_MAX + 3];
        const char *port = NULL;
        bool ok;
        if (item[0] == '[') {
            const char *close = strchr(item, ']');
            ok = close != NULL && (close[1] == '\0' || close[1] == ':') &&
                 (size_t)(close - item - 1) < sizeof host;
            if (ok) {
                memcpy(host, item + 1, (size_t)(close - item - 1));
                host[close - item - 1] = '\0';
                port = close[1] == ':' ? close + 2 : NULL;
                ok = cfg_is_ipv6(host);
            }
        } else {
            const char *colon = strchr(item, ':');
            size_t hl = colon != NULL ? (size_t)(colon - item) : strlen(item);
            ok = hl < sizeof host;
            if (ok) {
                memcpy(host, item, hl);
                host[hl] = '\0';
                port = colon != NULL ? colon + 1 : NULL;
                ok = cfg_host_ok(host, false);
            }
        }
        int portnum;
        if (ok && port != NULL)
            ok = cfg_parse_port(port, strlen(port), 1, &portnum) == 0;
        if (!ok) {
            cfg_add_error(ld, var, "%s is not a host name, host:port or [ipv6]:port", q);
            continue;
        }
        if (n == ALLOWED_HOSTS_MAX) {
            cfg_add_error(ld, var, "more than %d hosts", ALLOWED_HOSTS_MAX);
            return;
        }
        hosts[n++] = item;
    }
    cfg->allowed_hosts = n > 0 ? hosts : NULL;
    cfg->n_allowed_hosts = n;
}

void cfg_load_tls(loader *ld, const value *sv)
{
    sg_config *cfg = &ld->box->pub;
    const char *cert = sv[SV_TLS_CERT_FILE].text, *key = sv[SV_TLS_KEY_FILE].text;
    const char *cert_var = cfg_service_vars[SV_TLS_CERT_FILE].name;
    const char *key_var = cfg_service_vars[SV_TLS_KEY_FILE].name;
    if (cert != NULL && key == NULL)
        cfg_add_error(ld, key_var, "must be set together with %s", cert_var);
    if (key != NULL && cert == NULL)
        cfg_add_error(ld, cert_var, "must be set together with %s", key_var);
    if (cert != NULL)
        cfg_check_readable(ld, cert_var, cert);
    if (key != NULL)
        cfg_check_readable(ld, key_var, key);
    cfg->tls_cert_file = cfg_keep(ld, cert);
    cfg->tls_key_file = cfg_keep(ld, key);
}
