/* log: see log.h. The threshold and format are set once by main before any
 * other thread starts, then only read. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sqlgate/driver.h"

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

static void format_time(char *out, size_t n)
{
    int64_t ms = sg_clock_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t len = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, n - len, ".%03dZ", (int)(ms % 1000));
}

/* A value for a text line: bare when it is a plain word, else quoted and
 * escaped as JSON, so no value can forge a line or a field. */
static void text_value(FILE *f, json_t *value)
{
    if (json_is_string(value)) {
        const char *v = json_string_value(value);
        bool plain = *v != '\0';
        for (const unsigned char *p = (const unsigned char *)v; *p && plain; p++)
            plain = *p > ' ' && *p != '"' && *p != '=' && *p != '\\' && *p != 0x7f;
        if (plain) {
            fputs(v, f);
            return;
        }
    }
    char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(9));
    fputs(text ? text : "?", f);
    free(text);
}

static char *render_text(const char *time, sg_log_level level, const char *msg, json_t *fields)
{
    char *line = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&line, &size);
    if (f == NULL)
        return NULL;
    fprintf(f, "%s %-5s %s", time, level_names[level], msg);
    const char *key;
    json_t *value;
    json_object_foreach(fields, key, value)
    {
        fprintf(f, " %s=", key);
        text_value(f, value);
    }
    fputc('\n', f);
    fclose(f);
    return line;
}

/* One write(2) per line (stdio on stderr is unbuffered and would split a
 * line into several writes, which other processes could interleave). Lock
 * held. */
static void write_line(const char *line, bool newline)
{
    struct iovec iov[2] = {{(void *)line, strlen(line)}, {(void *)"\n", newline ? 1 : 0}};
    int n = 2;
    struct iovec *v = iov;
    while (n > 0) {
        ssize_t w = writev(STDERR_FILENO, v, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        while (n > 0 && (size_t)w >= v->iov_len) {
            w -= (ssize_t)v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
}

void log_event(sg_log_level level, const char *msg, json_t *fields)
{
    if (!log_enabled(level)) {
        json_decref(fields);
        return;
    }
    if (fields == NULL || !json_is_object(fields)) {
        json_decref(fields);
        fields = json_object();
        if (fields == NULL)
            return;
    }
    char time[40];
    format_time(time, sizeof time);
    char *line = NULL;
    if (as_json) {
        json_t *event =
            json_pack("{s:s,s:s,s:s}", "time", time, "level", level_names[level], "msg", msg);
        if (event != NULL) {
            json_object_update(event, fields);
            line = json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
            json_decref(event);
        }
    } else {
        line = render_text(time, level, msg, fields);
    }
    json_decref(fields);
    if (line == NULL)
        return;
    pthread_mutex_lock(&lock);
    write_line(line, as_json);
    pthread_mutex_unlock(&lock);
    free(line);
}
