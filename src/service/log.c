/* log: see log.h. The threshold and format are set once by main before any
 * other thread starts, then only read. */
#include "log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jsonw.h"
#include "sqlgate/clock.h"

static sg_log_level threshold = SG_LOG_INFO;
static bool as_json = true;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(sg_log_level level, bool json)
{
    threshold = level;
    as_json = json;
}

bool log_enabled(sg_log_level level)
{
    return level >= threshold;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (at least 25 bytes). The part up to
 * the second is formatted once per second per thread: gmtime_r + strftime
 * were a visible share of an access-log line. */
static void format_time(char out[static 25])
{
    static _Thread_local int64_t cached_secs = -1;
    static _Thread_local char cached[21]; /* "YYYY-MM-DDTHH:MM:SS" */
    int64_t ms = sg_clock_wall_ms();
    if (ms < 0)
        ms = 0; /* a clock before 1970 reads as 1970 */
    int64_t secs = ms / 1000;
    if (secs != cached_secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        if (strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
            memcpy(cached, "0000-00-00T00:00:00", 20);
        cached_secs = secs;
    }
    int frac = (int)(ms % 1000);
    memcpy(out, cached, 19);
    out[19] = '.';
    out[20] = (char)('0' + frac / 100);
    out[21] = (char)('0' + frac / 10 % 10);
    out[22] = (char)('0' + frac % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

/* A text value is bare when it is a plain ASCII word, else quoted and
 * escaped as JSON, so no value can forge a line or a field. */
static bool plain_word(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\')
            return false;
    }
    return true;
}

/* "%.9g", then made to read back as a real: a '.0' after a whole number,
 * the exponent without '+' or leading zeros ("1e9"). Rare lines only (a
 * shutdown's duration): snprintf is fine here, and the function stays out
 * of line so that put_value, on every access line, stays small. */
__attribute__((noinline)) static void put_real(jw_buf *b, double v)
{
    if (!isfinite(v)) {
        jw_null(b);
        return;
    }
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp - 2, "%.9g", v);
    if (n < 0 || (size_t)n >= sizeof tmp - 2) {
        jw_null(b);
        return;
    }
    size_t len = (size_t)n;
    char *e = strchr(tmp, 'e');
    if (e == NULL) {
        if (strchr(tmp, '.') == NULL) {
            memcpy(tmp + len, ".0", 3);
            len += 2;
        }
    } else {
        char *digits = e + 1 + (e[1] == '-' || e[1] == '+');
        char *from = digits;
        while (*from == '0' && from[1] != '\0')
            from++;
        char *to = e[1] == '+' ? e + 1 : digits;
        memmove(to, from, (size_t)(tmp + len + 1 - from));
        len -= (size_t)(from - to);
    }
    jw_raw(b, tmp, len);
}

static void put_value(jw_buf *b, const log_field *f, bool text)
{
    switch (f->kind) {
    case LOG_STR:
        if (f->s == NULL)
            jw_null(b);
        else if (text && plain_word(f->s, f->len))
            jw_raw(b, f->s, f->len);
        else
            jw_str(b, f->s, f->len);
        break;
    case LOG_INT:
        jw_i64(b, f->i);
        break;
    case LOG_MS:
        jw_ms(b, f->i);
        break;
    case LOG_REAL:
        put_real(b, f->d);
        break;
    case LOG_BOOL:
        jw_bool(b, f->b);
        break;
    case LOG_JSON:
        jw_raw(b, f->s, f->len);
        break;
    }
}

static void render(jw_buf *b, sg_log_level level, const char *msg, const log_field *fields,
                   size_t n)
{
    char time[40];
    format_time(time);
    if (as_json) {
        jw_lit(b, "{\"time\":\"");
        jw_lit(b, time);
        jw_lit(b, "\",\"level\":\"");
        jw_lit(b, level_names[level]);
        jw_lit(b, "\",\"msg\":");
        jw_cstr(b, msg);
        for (size_t i = 0; i < n; i++) {
            /* A key is a plain word (log.h): nothing to escape. */
            jw_lit(b, ",\"");
            jw_lit(b, fields[i].key);
            jw_lit(b, "\":");
            put_value(b, &fields[i], false);
        }
        jw_char(b, '}');
    } else {
        static const char *const padded[] = {"debug", "info ", "warn ", "error"};
        jw_lit(b, time);
        jw_char(b, ' ');
        jw_lit(b, padded[level]);
        jw_char(b, ' ');
        jw_lit(b, msg);
        for (size_t i = 0; i < n; i++) {
            jw_char(b, ' ');
            jw_lit(b, fields[i].key);
            jw_char(b, '=');
            put_value(b, &fields[i], true);
        }
    }
    jw_char(b, '\n');
}

/* One write(2) per line (stdio on stderr is unbuffered and would split a
 * line into several writes, which other processes could interleave). Lock
 * held. */
static void write_all(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        len -= (size_t)w;
    }
}

void log_line(sg_log_level level, const char *msg, const log_field *fields, size_t n)
{
    if (!log_enabled(level))
        return;
    jw_buf b;
    jw_init(&b, 0);
    render(&b, level, msg, fields, n);
    if (!b.failed) {
        pthread_mutex_lock(&lock);
        write_all(b.data, b.len);
        pthread_mutex_unlock(&lock);
    }
    jw_free(&b);
}
