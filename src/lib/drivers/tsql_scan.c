/* tsql_scan: one lexical pass over a T-SQL batch (see tsql_scan.h).
 *
 * Every batch the SQL Server driver runs goes through here, so the scan reads
 * each byte once and uses ASCII tests of its own: the <ctype.h> functions
 * are calls through the locale tables, several per byte. The rules:
 *
 * - A word is a run of ASCII letters, digits, '_', '@' and '$'. Every word
 *   this scan looks for is made of letters and '_', so a word found anywhere
 *   in the text lies inside one such run.
 * - changes_session: the first word must be SELECT or WITH, preceded by
 *   nothing but white space and '('; no '#' anywhere (temporary tables and
 *   procedures); no word other than a variable (@x) equal to one of
 *   session_words. A SELECT-only batch leaves only @@ROWCOUNT and @@ERROR
 *   behind (T-SQL functions cannot change session state, and a procedure
 *   called without EXEC must be a batch's first word). An empty batch counts
 *   as changing, to be safe.
 * - unresettable: "setuser", "sp_setapprole" or "isolation" anywhere, or
 *   EXEC / EXECUTE (at the start of a word or after '$') followed by white
 *   space and the word AS.
 * - may_open_tran: "tran" or "exec" anywhere; tran_options:
 *   "implicit_transactions" or "ansi_defaults" anywhere.
 * - dml_words: the words INSERT, UPDATE, DELETE and MERGE, as whole words
 *   other than variables, wherever they stand.
 */
#include "tsql_scan.h"

#include <stddef.h>
#include <string.h>

static inline unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static inline bool is_alnum(unsigned char c)
{
    return (unsigned)(lower(c) - 'a') < 26u || (unsigned)(c - '0') < 10u;
}

static inline bool is_word(unsigned char c)
{
    return is_alnum(c) || c == '_' || c == '@' || c == '$';
}

static inline bool is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Whether s (not necessarily NUL-terminated within n) starts with w (lower
 * case), any case. */
static bool starts_with(const unsigned char *s, size_t n, const char *w, size_t wlen)
{
    if (n < wlen)
        return false;
    for (size_t i = 0; i < wlen; i++)
        if (lower(s[i]) != (unsigned char)w[i])
            return false;
    return true;
}

/* Statements that write or set session state (writes also set @@IDENTITY),
 * by length: a word is compared only with those of its own length. */
static const char *const session_words[][8] = {
    [3] = {"set", "use"},
    [4] = {"dbcc", "deny", "drop", "exec", "into", "kill", "open", "save"},
    [5] = {"alter", "begin", "grant", "merge"},
    [6] = {"create", "delete", "insert", "revert", "revoke", "update"},
    [7] = {"declare", "execute", "setuser", "waitfor"},
    [8] = {"truncate"},
    [10] = {"checkpoint"},
};

static bool is_dml_word(const unsigned char *w, size_t len)
{
    return (len == 6 && (starts_with(w, len, "insert", 6) || starts_with(w, len, "update", 6) ||
                         starts_with(w, len, "delete", 6))) ||
           (len == 5 && starts_with(w, len, "merge", 5));
}

static bool is_session_word(const unsigned char *w, size_t len)
{
    if (len >= sizeof session_words / sizeof session_words[0])
        return false;
    unsigned char first = lower(w[0]);
    for (const char *const *c = session_words[len]; c < session_words[len] + 8 && *c != NULL; c++)
        if ((unsigned char)(*c)[0] == first && starts_with(w, len, *c, len))
            return true;
    return false;
}

/* EXEC or EXECUTE at q, then white space and AS: an impersonation. q points
 * into a word whose end is end; the text goes on past it (NUL-terminated). */
static bool exec_as_at(const unsigned char *q, const unsigned char *end)
{
    if (!starts_with(q, (size_t)(end - q), "exec", 4))
        return false;
    const unsigned char *r = q + 4;
    if (starts_with(r, (size_t)(end - r), "ute", 3))
        r += 3;
    if (r != end || !is_space(*r))
        return false; /* the word goes on, or is not followed by white space */
    while (is_space(*r))
        r++;
    return lower(r[0]) == 'a' && lower(r[1]) == 's' && !is_alnum(r[2]) && r[2] != '_';
}

/* The words looked for anywhere, inside the word [start, end). */
static void scan_inside(const unsigned char *start, const unsigned char *end, tsql_traits *out)
{
    for (const unsigned char *q = start; q < end; q++) {
        size_t n = (size_t)(end - q);
        switch (lower(*q)) {
        case 't':
            if (starts_with(q, n, "tran", 4))
                out->may_open_tran = true;
            break;
        case 'e':
            if (starts_with(q, n, "exec", 4)) {
                out->may_open_tran = true;
                if ((q == start || q[-1] == '$') && exec_as_at(q, end))
                    out->unresettable = true;
            }
            break;
        case 'i':
            if (starts_with(q, n, "isolation", 9))
                out->unresettable = true;
            else if (starts_with(q, n, "implicit_transactions", 21))
                out->tran_options = true;
            break;
        case 'a':
            if (starts_with(q, n, "ansi_defaults", 13))
                out->tran_options = true;
            break;
        case 's':
            if (starts_with(q, n, "setuser", 7) || starts_with(q, n, "sp_setapprole", 13))
                out->unresettable = true;
            break;
        default:
            break;
        }
    }
}

void tsql_scan(const char *sql, tsql_traits *out)
{
    memset(out, 0, sizeof *out);
    bool first = true; /* the first word is still to come */
    const unsigned char *p = (const unsigned char *)sql;
    while (*p != '\0') {
        if (!is_word(*p)) {
            if (*p == '#' || (first && !is_space(*p) && *p != '(')) {
                /* A temporary object, or a comment or anything unusual
                 * before the first word. */
                out->changes_session = true;
                first = false;
            }
            p++;
            continue;
        }
        const unsigned char *start = p;
        while (is_word(*p))
            p++;
        size_t len = (size_t)(p - start);
        scan_inside(start, p, out);
        if (*start != '@' && out->dml_words < 255 && is_dml_word(start, len))
            out->dml_words++;
        if (first) {
            first = false;
            if (!((len == 6 && starts_with(start, len, "select", 6)) ||
                  (len == 4 && starts_with(start, len, "with", 4))))
                out->changes_session = true;
        } else if (*start != '@' && !out->changes_session && is_session_word(start, len)) {
            out->changes_session = true;
        }
    }
    if (first)
        out->changes_session = true; /* an empty batch: reset, to be safe */
}
