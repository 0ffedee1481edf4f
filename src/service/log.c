/* log: see log.h. The threshold and format are set once by main before any
 * other thread starts, then only read. */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
        if (json_is_string(value)) {
            fprintf(f, " %s=%s", key, json_string_value(value));
        } else {
            char *v = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
            fprintf(f, " %s=%s", key, v ? v : "?");
            free(v);
        }
    }
    fputc('\n', f);
    fclose(f);
    return line;
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
    fputs(line, stderr);
    if (as_json)
        fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&lock);
    free(line);
}
