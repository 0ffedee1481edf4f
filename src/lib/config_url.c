/* config_url: a database's URL variable, in any of its forms.
 *
 * mssql:// and sqlserver:// URLs, sqlite: URLs and the ADO.NET / ODBC
 * Key=Value;... strings that cloud portals hand out all fill one url_parts;
 * cfg_load_db (config_db.c) then merges it under the explicit variables.
 * Errors name the variable and never echo the URL: it may hold a password.
 *
 * Decisions beyond docs/configuration.md:
 * - URL forms: see cfg_parse_url. In the ADO.NET form Encrypt True/Yes/Strict/
 *   Mandatory means require and False/No/Optional means request (SqlClient
 *   also lets the server insist on TLS then); Connection Timeout (seconds)
 *   becomes CONNECT_TIMEOUT_MS unless that is set; ApplicationIntent=ReadOnly
 *   means READ_ONLY. Keys known to be harmless here are ignored, any other
 *   key is an error naming it, except right after an unquoted password: a
 *   password with an unquoted ';' spills into what looks like the next key,
 *   so that key is described without being named.
 */
#include "config_int.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void cfg_url_clear(url_parts *u)
{
    free(u->host);
    free(u->database);
    free(u->user);
    sg_free_secret(u->password);
    free(u->app_name);
    free(u->path);
    memset(u, 0, sizeof *u);
}

/* Percent-decodes n bytes into a new string. Returns 0, -1 on a bad or %00
 * escape, -2 on OOM. */
static int pct_decode(const char *s, size_t n, char **out)
{
    char *d = malloc(n + 1);
    size_t o = 0;
    if (d == NULL)
        return -2;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? sg_hex_value(s[i + 1]) : -1;
        int lo = i + 2 < n ? sg_hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            sg_wipe(d, o);
            free(d);
            return -1;
        }
        d[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[o] = '\0';
    *out = d;
    return 0;
}

/* Decodes a URL part into *dst (replacing it); reports under var as `what`. */
static int url_part(loader *ld, const char *var, const char *what, const char *s, size_t n,
                    char **dst)
{
    char *d = NULL;
    int rc = pct_decode(s, n, &d);
    if (rc == -2) {
        ld->oom = true;
        return -1;
    }
    if (rc == -1) {
        cfg_add_error(ld, var, "bad percent-encoding in the %s", what);
        return -1;
    }
    sg_free_secret(*dst);
    *dst = d;
    return 0;
}

static void set_string(loader *ld, char **dst, const char *s, size_t n)
{
    char *d = cfg_dup_range(ld, s, n);
    if (d == NULL)
        return;
    sg_free_secret(*dst);
    *dst = d;
}

/* The query part of an mssql:// URL (or sqlite: with only read_only):
 * key=value pairs separated by '&', both percent-decoded. */
static void parse_query(loader *ld, const char *var, const char *q, bool sqlite, url_parts *u)
{
    while (*q != '\0') {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        char *key = NULL, *val = NULL;
        char kq[QUOTE_BUF];
        if (n == 0)
            goto next;
        if (eq == NULL) {
            char *k = cfg_dup_range(ld, q, n);
            if (k != NULL)
                cfg_add_error(ld, var, "query parameter %s has no value",
                              cfg_quote(kq, sizeof kq, k));
            free(k);
            goto next;
        }
        if (url_part(ld, var, "query", q, (size_t)(eq - q), &key) != 0 ||
            url_part(ld, var, "query", eq + 1, n - (size_t)(eq - q) - 1, &val) != 0)
            goto next;
        bool b;
        int w;
        if (strcasecmp(key, "read_only") == 0) {
            if (cfg_parse_bool(val, &b) != 0)
                cfg_add_error(ld, var, "read_only must be true or false");
            else {
                u->read_only = b;
                u->has_read_only = true;
            }
        } else if (sqlite) {
            cfg_add_error(ld, var, "unknown query parameter %s (a sqlite URL knows only read_only)",
                          cfg_quote(kq, sizeof kq, key));
        } else if (strcasecmp(key, "encrypt") == 0) {
            if (cfg_parse_word(cfg_encrypt_words, val, &w) == 0) {
                u->encrypt = w;
            } else if (cfg_parse_bool(val, &b) == 0) {
                u->encrypt = b ? SG_ENCRYPT_REQUIRE : SG_ENCRYPT_REQUEST;
            } else {
                cfg_add_error(ld, var, "encrypt must be off, request or require (or true/false)");
                goto next;
            }
            u->has_encrypt = true;
        } else if (strcasecmp(key, "app_name") == 0) {
            free(u->app_name);
            u->app_name = val;
            val = NULL;
        } else if (strcasecmp(key, "tds_version") == 0) {
            if (cfg_parse_word(cfg_tds_words, val, &w) != 0) {
                cfg_add_error(ld, var, "tds_version must be auto, 7.1, 7.2, 7.3 or 7.4");
            } else {
                u->tds = w;
                u->has_tds = true;
            }
        } else {
            cfg_add_error(ld, var,
                          "unknown query parameter %s (known: encrypt, app_name, tds_version, "
                          "read_only)",
                          cfg_quote(kq, sizeof kq, key));
        }
    next:
        free(key);
        free(val);
        q += n;
        if (*q == '&')
            q++;
    }
}

/* mssql://[user[:password]@]host[:port][/database][?key=value&...]
 * (also sqlserver://). The authority ends at the first '/', '?' or '#'; the
 * user information at the last '@' inside it, so an unencoded '@' in a
 * password works but '/', '?' and '#' must be percent-encoded. */
static void parse_mssql_url(loader *ld, const char *var, const char *s, url_parts *u)
{
    u->kind = URL_MSSQL;
    size_t alen = strcspn(s, "/?#");
    const char *auth_end = s + alen;
    const char *at = NULL;
    for (const char *p = s; p < auth_end; p++) {
        if (*p == '@')
            at = p;
    }
    const char *hp = s;
    if (at != NULL) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        size_t ulen = colon != NULL ? (size_t)(colon - s) : (size_t)(at - s);
        if (ulen > 0)
            url_part(ld, var, "user name", s, ulen, &u->user);
        if (colon != NULL)
            url_part(ld, var, "password", colon + 1, (size_t)(at - colon - 1), &u->password);
        hp = at + 1;
    }

    const char *port = NULL;
    if (*hp == '[') {
        const char *close = memchr(hp, ']', (size_t)(auth_end - hp));
        if (close == NULL) {
            cfg_add_error(ld, var, "unterminated '[' in the host");
            goto path;
        }
        set_string(ld, &u->host, hp + 1, (size_t)(close - hp - 1));
        if (u->host != NULL && !cfg_is_ipv6(u->host))
            cfg_add_error(ld, var, "the host in brackets is not an IPv6 address");
        if (close + 1 < auth_end) {
            if (close[1] != ':')
                cfg_add_error(ld, var, "unexpected text after the IPv6 address");
            else
                port = close + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
        size_t hlen = colon != NULL ? (size_t)(colon - hp) : (size_t)(auth_end - hp);
        if (hlen > 0) {
            set_string(ld, &u->host, hp, hlen);
            if (u->host != NULL && !cfg_host_ok(u->host, false))
                cfg_add_error(ld, var,
                              "the host is not a valid name or address (IPv6 goes in brackets; "
                              "percent-encode special characters in the user name and password)");
        }
        if (colon != NULL)
            port = colon + 1;
    }
    if (port != NULL) {
        if (cfg_parse_port(port, (size_t)(auth_end - port), 1, &u->port) != 0)
            cfg_add_error(ld, var,
                          "the port must be an integer from 1 to 65535 (percent-encode special "
                          "characters in the user name and password)");
        else
            u->has_port = true;
    }

path:
    s = auth_end;
    if (*s == '/') {
        size_t n = strcspn(s + 1, "?#");
        if (n > 0)
            url_part(ld, var, "database name", s + 1, n, &u->database);
        s += 1 + n;
    }
    if (*s == '?') {
        size_t n = strcspn(s + 1, "#");
        char *q = cfg_dup_range(ld, s + 1, n);
        if (q != NULL)
            parse_query(ld, var, q, false, u);
        free(q);
        s += 1 + n;
    }
    if (*s == '#')
        cfg_add_error(ld, var, "unexpected '#' (percent-encode it as %%23 in a password)");
}

/* sqlite:///abs/path.db, sqlite:relative/path.db, sqlite::memory:, each with
 * an optional ?read_only=true. */
static void parse_sqlite_url(loader *ld, const char *var, const char *s, url_parts *u)
{
    u->kind = URL_SQLITE;
    if (strncmp(s, "//", 2) == 0) {
        if (s[2] != '/') {
            cfg_add_error(ld, var, "a sqlite URL takes no host (write sqlite:///absolute/path.db)");
            return;
        }
        s += 2;
    }
    size_t n = strcspn(s, "?");
    if (n == 0 || (n == 1 && s[0] == '/')) {
        cfg_add_error(ld, var, "the sqlite URL has no path");
    } else {
        url_part(ld, var, "path", s, n, &u->path);
    }
    if (s[n] == '?')
        parse_query(ld, var, s + n + 1, true, u);
}

/* An ADO.NET / ODBC value after '=': "quoted" or 'quoted' with the quote
 * doubled inside, {braced} with }} inside, or bare up to ';' and trimmed.
 * Copies into out (as large as the input); returns the position after the
 * value, or NULL when a quote is not closed. */
static const char *ado_value(const char *p, char *out, bool *quoted)
{
    size_t o = 0;
    *quoted = false;
    if (*p == '"' || *p == '\'' || *p == '{') {
        char close = *p == '{' ? '}' : *p;
        *quoted = true;
        for (p++;; p++) {
            if (*p == '\0')
                return NULL;
            if (*p == close) {
                if (p[1] != close)
                    break;
                p++;
            }
            out[o++] = *p;
        }
        out[o] = '\0';
        return p + 1;
    }
    const char *end = p + strcspn(p, ";");
    const char *e = end;
    while (e > p && isspace((unsigned char)e[-1]))
        e--;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
    return end;
}

enum ado_field {
    ADO_IGNORE,
    ADO_SERVER,
    ADO_DATABASE,
    ADO_USER,
    ADO_PASSWORD,
    ADO_ENCRYPT,
    ADO_APP_NAME,
    ADO_INTENT,
    ADO_TIMEOUT,
    ADO_INTEGRATED
};

/* Keys compare lower-cased with spaces and '_' removed ("User Id" = "userid"). */
static const struct {
    const char *key;
    enum ado_field field;
} ado_keys[] = {
    {"server", ADO_SERVER},
    {"datasource", ADO_SERVER},
    {"address", ADO_SERVER},
    {"addr", ADO_SERVER},
    {"networkaddress", ADO_SERVER},
    {"database", ADO_DATABASE},
    {"initialcatalog", ADO_DATABASE},
    {"userid", ADO_USER},
    {"uid", ADO_USER},
    {"user", ADO_USER},
    {"username", ADO_USER},
    {"password", ADO_PASSWORD},
    {"pwd", ADO_PASSWORD},
    {"encrypt", ADO_ENCRYPT},
    {"applicationname", ADO_APP_NAME},
    {"app", ADO_APP_NAME},
    {"applicationintent", ADO_INTENT},
    {"connecttimeout", ADO_TIMEOUT},
    {"connectiontimeout", ADO_TIMEOUT},
    {"timeout", ADO_TIMEOUT},
    {"logintimeout", ADO_TIMEOUT},
    {"integratedsecurity", ADO_INTEGRATED},
    {"trustedconnection", ADO_INTEGRATED},
    /* Harmless here: TLS verification is CA_FILE's job, the rest are client
     * features sqlgate has no use for. */
    {"trustservercertificate", ADO_IGNORE},
    {"hostnameincertificate", ADO_IGNORE},
    {"persistsecurityinfo", ADO_IGNORE},
    {"multipleactiveresultsets", ADO_IGNORE},
    {"marsconnection", ADO_IGNORE},
    {"driver", ADO_IGNORE},
    {"provider", ADO_IGNORE},
    {"pooling", ADO_IGNORE},
    {"packetsize", ADO_IGNORE},
    {"connectretrycount", ADO_IGNORE},
    {"connectretryinterval", ADO_IGNORE},
    {"workstationid", ADO_IGNORE},
    {"wsid", ADO_IGNORE},
    {"multisubnetfailover", ADO_IGNORE},
};

static int ado_key(const char *k, size_t n, enum ado_field *out)
{
    char norm[40];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c == ' ' || c == '\t' || c == '_')
            continue;
        if (o + 1 >= sizeof norm)
            return -1;
        norm[o++] = (char)tolower(c);
    }
    norm[o] = '\0';
    for (size_t i = 0; i < sizeof ado_keys / sizeof ado_keys[0]; i++) {
        if (strcmp(ado_keys[i].key, norm) == 0) {
            *out = ado_keys[i].field;
            return 0;
        }
    }
    return -1;
}

/* Server=[tcp:]host[,port]; host may be [v6] or a bare IPv6 address. */
static void ado_server(loader *ld, const char *var, const char *v, url_parts *u)
{
    if (strncasecmp(v, "tcp:", 4) == 0) {
        v += 4;
    } else if (strncasecmp(v, "np:", 3) == 0 || strncasecmp(v, "lpc:", 4) == 0 ||
               strncasecmp(v, "admin:", 6) == 0) {
        cfg_add_error(ld, var, "only TCP servers are supported (Server=tcp:host,port)");
        return;
    }
    const char *comma = strrchr(v, ',');
    size_t hlen = comma != NULL ? (size_t)(comma - v) : strlen(v);
    while (hlen > 0 && isspace((unsigned char)v[hlen - 1]))
        hlen--;
    if (comma != NULL) {
        const char *p = comma + 1;
        while (isspace((unsigned char)*p))
            p++;
        size_t plen = strlen(p);
        while (plen > 0 && isspace((unsigned char)p[plen - 1]))
            plen--;
        if (cfg_parse_port(p, plen, 1, &u->port) != 0)
            cfg_add_error(ld, var,
                          "the port after ',' in Server must be an integer from 1 to 65535");
        else
            u->has_port = true;
    }
    if (hlen >= 2 && v[0] == '[' && v[hlen - 1] == ']') {
        v++;
        hlen -= 2;
    }
    if (memchr(v, '\\', hlen) != NULL) {
        cfg_add_error(ld, var,
                      "named instances (host\\instance) are not supported; give Server=host,port");
        return;
    }
    if ((hlen == 7 && strncasecmp(v, "(local)", 7) == 0) || (hlen == 1 && v[0] == '.')) {
        v = "localhost";
        hlen = strlen(v);
    }
    set_string(ld, &u->host, v, hlen);
    if (u->host != NULL && !cfg_host_ok(u->host, true))
        cfg_add_error(ld, var, "Server is not a valid host name or address");
}

static void ado_field_set(loader *ld, const char *var, enum ado_field f, const char *key,
                          const char *v, url_parts *u)
{
    bool b;
    int64_t n;
    switch (f) {
    case ADO_IGNORE:
        break;
    case ADO_SERVER:
        ado_server(ld, var, v, u);
        break;
    case ADO_DATABASE:
        set_string(ld, &u->database, v, strlen(v));
        break;
    case ADO_USER:
        set_string(ld, &u->user, v, strlen(v));
        break;
    case ADO_PASSWORD:
        set_string(ld, &u->password, v, strlen(v));
        break;
    case ADO_APP_NAME:
        set_string(ld, &u->app_name, v, strlen(v));
        break;
    case ADO_ENCRYPT:
        if (strcasecmp(v, "strict") == 0 || strcasecmp(v, "mandatory") == 0 ||
            (cfg_parse_bool(v, &b) == 0 && b)) {
            u->encrypt = SG_ENCRYPT_REQUIRE;
        } else if (strcasecmp(v, "optional") == 0 || cfg_parse_bool(v, &b) == 0) {
            u->encrypt = SG_ENCRYPT_REQUEST;
        } else {
            cfg_add_error(ld, var, "%s must be True, False, Strict, Mandatory or Optional", key);
            break;
        }
        u->has_encrypt = true;
        break;
    case ADO_INTENT:
        if (strcasecmp(v, "readonly") == 0) {
            u->read_only = true;
        } else if (strcasecmp(v, "readwrite") == 0) {
            u->read_only = false;
        } else {
            cfg_add_error(ld, var, "%s must be ReadOnly or ReadWrite", key);
            break;
        }
        u->has_read_only = true;
        break;
    case ADO_TIMEOUT:
        if (cfg_parse_int(v, &n) != 0 || n < 1 || n > MS_MAX / 1000) {
            cfg_add_error(ld, var, "%s must be a number of seconds from 1 to %d", key,
                          MS_MAX / 1000);
            break;
        }
        u->connect_timeout_ms = n * 1000;
        u->has_connect_timeout = true;
        break;
    case ADO_INTEGRATED:
        if (cfg_parse_bool(v, &b) != 0 || b)
            cfg_add_error(ld, var,
                          "integrated (Windows) authentication is not supported; give a "
                          "user and password");
        break;
    }
}

/* Key=Value;Key=Value as cloud portals hand out (ADO.NET, also ODBC braces). */
static void parse_ado(loader *ld, const char *var, const char *s, url_parts *u)
{
    char *val = malloc(strlen(s) + 1);
    char kq[QUOTE_BUF];
    /* A password with an unquoted ';' spills into the next "key"; such a
     * fragment is never named in an error, only described. */
    bool after_password = false;
    if (val == NULL) {
        ld->oom = true;
        return;
    }
    u->kind = URL_MSSQL;
    const char *p = s;
    while (*p != '\0') {
        while (*p == ';' || isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *k = p;
        p += strcspn(p, "=;");
        if (*p != '=') {
            cfg_add_error(ld, var,
                          after_password
                              ? "text after the password is not Key=Value (quote a password "
                                "containing ';' as Password=\"...\")"
                              : "an entry is not Key=Value (entries are separated by ';')");
            continue;
        }
        size_t klen = (size_t)(p - k);
        while (klen > 0 && isspace((unsigned char)k[klen - 1]))
            klen--;
        char *key = cfg_dup_range(ld, k, klen);
        if (key == NULL)
            break;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        bool quoted;
        const char *next = ado_value(p, val, &quoted);
        if (next == NULL) {
            cfg_add_error(ld, var, "the value of %s has no closing quote",
                          cfg_quote(kq, sizeof kq, key));
            free(key);
            break;
        }
        p = next;
        if (quoted) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p != '\0' && *p != ';') {
                cfg_add_error(ld, var, "unexpected text after the quoted value of %s",
                              cfg_quote(kq, sizeof kq, key));
                p += strcspn(p, ";");
            }
        }
        enum ado_field f;
        if (klen == 0) {
            cfg_add_error(ld, var, "an entry has no key");
        } else if (ado_key(key, klen, &f) != 0) {
            if (after_password)
                cfg_add_error(ld, var,
                              "unknown key right after the password, not named here as it may be "
                              "part of the password (quote a password containing ';' as "
                              "Password=\"...\")");
            else
                cfg_add_error(ld, var, "unknown key %s in the connection string",
                              cfg_quote(kq, sizeof kq, key));
            after_password = false;
        } else {
            ado_field_set(ld, var, f, key, val, u);
            after_password = f == ADO_PASSWORD && !quoted;
        }
        free(key);
    }
    sg_wipe(val, strlen(s) + 1);
    free(val);
}

/* Recognises the URL form and fills *u; errors name var and never echo the
 * URL (it may carry a password). */
void cfg_parse_url(loader *ld, const char *var, const char *s, url_parts *u)
{
    const char *sep = strstr(s, "://");
    if (strncasecmp(s, "sqlite:", 7) == 0) {
        parse_sqlite_url(ld, var, s + 7, u);
    } else if (strncasecmp(s, "mssql://", 8) == 0) {
        parse_mssql_url(ld, var, s + 8, u);
    } else if (strncasecmp(s, "sqlserver://", 12) == 0) {
        parse_mssql_url(ld, var, s + 12, u);
    } else if (sep != NULL && (strchr(s, '=') == NULL || strchr(s, '=') > sep)) {
        cfg_add_error(ld, var,
                      "unknown URL scheme (expected mssql://, sqlserver://, sqlite: or an ADO.NET "
                      "Key=Value;... string)");
    } else if (strchr(s, '=') != NULL) {
        parse_ado(ld, var, s, u);
    } else {
        cfg_add_error(ld, var,
                      "not a URL (expected mssql://, sqlserver://, sqlite: or an ADO.NET "
                      "Key=Value;... string)");
    }
}
