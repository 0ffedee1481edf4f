/* sqlgate .env files: a parsed set of KEY=VALUE pairs, and the two lookup
 * functions the configuration loader reads through.
 *
 * Syntax (one assignment per line; '\n' or "\r\n" line ends; a UTF-8 byte
 * order mark at the start is skipped):
 *   # comment                     blank lines and '#' lines are skipped
 *   [export ]KEY=VALUE            KEY is [A-Za-z_][A-Za-z0-9_]*; spaces around
 *                                 KEY and '=' are allowed
 *   KEY=bare value  # comment     trimmed; a '#' after a space or tab starts a
 *                                 comment ("a#b" keeps its '#')
 *   KEY='literal'                 nothing is special inside single quotes
 *   KEY="a\nb \"q\" \\"           \n, \" and \\ are escapes; any other
 *                                 backslash is kept as written
 * Quoted values end on the same line; after the closing quote only spaces
 * and a comment may follow. A later assignment of the same key replaces the
 * earlier one. Values may be secrets: error lines name the origin, line and
 * what is wrong, never the value, and values are wiped when freed.
 */
#include "sqlgate/config.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOTENV_FILE_MAX   (1024 * 1024)
#define DOTENV_ERRORS_MAX 50 /* error lines reported; later ones are counted */

typedef struct dotenv_entry {
    char *key;
    char *value;
} dotenv_entry;

struct sg_dotenv {
    dotenv_entry *items;
    size_t n, cap;
};

typedef struct errbuf {
    sg_buf text; /* failed: out of memory */
    size_t count;
} errbuf;

static void err_add(errbuf *eb, const char *origin, size_t line, const char *msg)
{
    char buf[1024];
    eb->count++;
    if (eb->count > DOTENV_ERRORS_MAX)
        return;
    /* line 0 is the summary of lines past DOTENV_ERRORS_MAX */
    int w = line > 0 ? snprintf(buf, sizeof buf, "%s:%zu: %s\n", origin, line, msg)
                     : snprintf(buf, sizeof buf, "%s: %s\n", origin, msg);
    if (w < 0)
        return;
    size_t n = (size_t)w < sizeof buf ? (size_t)w : sizeof buf - 1;
    sg_buf_append(&eb->text, buf, n);
}

/* Stores key=value, replacing an earlier value; steals value. */
static int env_set(sg_dotenv *env, const char *key, size_t klen, char *value)
{
    for (size_t i = 0; i < env->n; i++) {
        if (strlen(env->items[i].key) == klen && memcmp(env->items[i].key, key, klen) == 0) {
            sg_free_secret(env->items[i].value);
            env->items[i].value = value;
            return 0;
        }
    }
    if (env->n == env->cap) {
        size_t cap = env->cap ? env->cap * 2 : 16;
        dotenv_entry *items = realloc(env->items, cap * sizeof *items);
        if (items == NULL)
            goto fail;
        env->items = items;
        env->cap = cap;
    }
    char *k = malloc(klen + 1);
    if (k == NULL)
        goto fail;
    memcpy(k, key, klen);
    k[klen] = '\0';
    env->items[env->n].key = k;
    env->items[env->n].value = value;
    env->n++;
    return 0;
fail:
    sg_free_secret(value);
    return -1;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool key_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool key_char(char c)
{
    return key_start(c) || (c >= '0' && c <= '9');
}

/* Parses one line (without its line end). Returns 0 (assignment stored or
 * nothing to do), -1 with *msg set for a malformed line, -2 on OOM. */
static int parse_line(sg_dotenv *env, const char *p, const char *end, const char **msg)
{
    while (p < end && is_blank(*p))
        p++;
    if (p == end || *p == '#')
        return 0;
    if (memchr(p, '\0', (size_t)(end - p)) != NULL) {
        *msg = "contains a NUL byte";
        return -1;
    }
    if (end - p > 7 && memcmp(p, "export", 6) == 0 && is_blank(p[6])) {
        p += 6;
        while (p < end && is_blank(*p))
            p++;
    }
    const char *key = p;
    if (p == end || !key_start(*p)) {
        *msg = "expected KEY=VALUE (a name starts with a letter or '_')";
        return -1;
    }
    while (p < end && key_char(*p))
        p++;
    size_t klen = (size_t)(p - key);
    while (p < end && is_blank(*p))
        p++;
    if (p == end || *p != '=') {
        *msg = "expected '=' after the name (names use A-Z, a-z, 0-9 and '_')";
        return -1;
    }
    const char *eq = p++;
    while (p < end && is_blank(*p))
        p++;

    char *value = malloc((size_t)(end - p) + 1);
    size_t o = 0;
    if (value == NULL)
        return -2;
    if (p < end && (*p == '\'' || *p == '"')) {
        char q = *p++;
        bool closed = false;
        while (p < end) {
            char c = *p++;
            if (c == q) {
                closed = true;
                break;
            }
            if (q == '"' && c == '\\' && p < end && (*p == 'n' || *p == '"' || *p == '\\')) {
                c = *p == 'n' ? '\n' : *p;
                p++;
            }
            value[o++] = c;
        }
        if (!closed) {
            *msg = q == '"' ? "unterminated double quote" : "unterminated single quote";
            goto bad;
        }
        while (p < end && is_blank(*p))
            p++;
        if (p < end && *p != '#') {
            *msg = "unexpected text after the closing quote";
            goto bad;
        }
    } else {
        const char *stop = end;
        for (const char *c = eq + 1; c < end; c++) {
            if (*c == '#' && is_blank(c[-1])) {
                stop = c;
                break;
            }
        }
        while (stop > p && is_blank(stop[-1]))
            stop--;
        if (stop > p) {
            memcpy(value, p, (size_t)(stop - p));
            o = (size_t)(stop - p);
        }
    }
    value[o] = '\0';
    return env_set(env, key, klen, value) == 0 ? 0 : -2;
bad:
    sg_wipe(value, o);
    free(value);
    return -1;
}

sg_dotenv *sg_dotenv_parse(const char *text, size_t len, const char *origin, char **errors)
{
    errbuf eb = {0};
    sg_dotenv *env = calloc(1, sizeof *env);
    if (errors != NULL)
        *errors = NULL;
    if (origin == NULL)
        origin = "(text)";
    if (env == NULL)
        goto oom;
    if (text == NULL) {
        text = "";
        len = 0;
    }

    const char *p = text, *end = text + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    for (size_t line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl != NULL ? nl : end;
        if (e > p && e[-1] == '\r')
            e--;
        const char *msg = NULL;
        int rc = parse_line(env, p, e, &msg);
        if (rc == -2)
            goto oom;
        if (rc == -1)
            err_add(&eb, origin, line, msg);
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    if (eb.text.failed)
        goto oom;
    if (eb.count > 0) {
        if (eb.count > DOTENV_ERRORS_MAX) {
            char more[64];
            snprintf(more, sizeof more, "%zu more malformed lines", eb.count - DOTENV_ERRORS_MAX);
            eb.count = 0; /* lets err_add append the summary line */
            err_add(&eb, origin, 0, more);
            if (eb.text.failed)
                goto oom;
        }
        sg_dotenv_free(env);
        if (errors != NULL)
            *errors = eb.text.data;
        else
            sg_buf_free(&eb.text);
        return NULL;
    }
    return env;
oom:
    sg_dotenv_free(env);
    sg_buf_free(&eb.text);
    if (errors != NULL)
        *errors = strdup("out of memory while reading a .env file\n");
    return NULL;
}

sg_dotenv *sg_dotenv_load(const char *path, char **errors)
{
    char *buf = NULL;
    size_t n = 0;
    char msg[512];
    if (errors != NULL)
        *errors = NULL;

    /* NUL bytes are let through: the parser reports them by line. */
    switch (sg_file_read(path, DOTENV_FILE_MAX, false, &buf, &n)) {
    case 0: {
        sg_dotenv *env = sg_dotenv_parse(buf, n, path, errors);
        sg_wipe(buf, n);
        free(buf);
        return env;
    }
    case SG_FILE_NOT_REGULAR:
        snprintf(msg, sizeof msg, "%s: not a regular file\n", path);
        break;
    case SG_FILE_TOO_LARGE:
        snprintf(msg, sizeof msg, "%s: larger than %d bytes\n", path, DOTENV_FILE_MAX);
        break;
    default:
        if (errno == ENOENT)
            return sg_dotenv_parse("", 0, path, errors);
        if (errno == ENOMEM)
            snprintf(msg, sizeof msg, "%s: out of memory\n", path);
        else
            snprintf(msg, sizeof msg, "%s: cannot read: %s\n", path, strerror(errno));
        break;
    }
    if (errors != NULL)
        *errors = strdup(msg);
    return NULL;
}

void sg_dotenv_free(sg_dotenv *env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; i < env->n; i++) {
        free(env->items[i].key);
        sg_free_secret(env->items[i].value);
    }
    free(env->items);
    free(env);
}

const char *sg_dotenv_lookup(void *ud, const char *name)
{
    const sg_dotenv *env = ud;
    if (env == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < env->n; i++) {
        if (strcmp(env->items[i].key, name) == 0)
            return env->items[i].value;
    }
    return NULL;
}

const char *sg_env_lookup(void *ud, const char *name)
{
    if (name == NULL)
        return NULL;
    const char *v = getenv(name);
    if (v != NULL)
        return v;
    return sg_dotenv_lookup(ud, name);
}
