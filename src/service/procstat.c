/* procstat: see procstat.h. Linux only, like the rest of the service. */
#include "procstat.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void help(FILE *f, const char *name, const char *type, const char *text)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* Reads a small /proc file into buf (NUL-terminated); false on failure. */
static bool read_proc(const char *path, char *buf, size_t cap)
{
    FILE *in = fopen(path, "re");
    if (in == NULL)
        return false;
    size_t n = fread(buf, 1, cap - 1, in);
    fclose(in);
    buf[n] = '\0';
    return n > 0;
}

/* Fields 20 (num_threads) and 22 (starttime, clock ticks after boot) of
 * /proc/self/stat. The command name (field 2) may hold blanks and ')', so
 * fields are counted from the last ')'. */
static bool self_stat(unsigned long long *threads, unsigned long long *start_ticks)
{
    char buf[1024];
    if (!read_proc("/proc/self/stat", buf, sizeof buf))
        return false;
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return false;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (field == 20)
            *threads = v;
        else if (field == 22)
            *start_ticks = v;
        p = strchr(p, ' ');
        if (p == NULL)
            return field == 22;
    }
    return true;
}

/* Boot time, seconds since the epoch ("btime" in /proc/stat). */
static bool boot_time(unsigned long long *out)
{
    FILE *in = fopen("/proc/stat", "re");
    if (in == NULL)
        return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, in) != NULL)
        found = sscanf(line, "btime %llu", out) == 1;
    fclose(in);
    return found;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

void procstat_write(FILE *f)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        help(f, "process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds.");
        fprintf(f, "process_cpu_seconds_total %.6f\n", cpu);
    }

    char statm[256];
    unsigned long long vsz_pages, rss_pages;
    long page = sysconf(_SC_PAGESIZE);
    if (page > 0 && read_proc("/proc/self/statm", statm, sizeof statm) &&
        sscanf(statm, "%llu %llu", &vsz_pages, &rss_pages) == 2) {
        help(f, "process_resident_memory_bytes", "gauge", "Resident memory size, bytes.");
        fprintf(f, "process_resident_memory_bytes %llu\n", rss_pages * (unsigned long long)page);
        help(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size, bytes.");
        fprintf(f, "process_virtual_memory_bytes %llu\n", vsz_pages * (unsigned long long)page);
    }

    long fds = open_fds();
    if (fds >= 0) {
        help(f, "process_open_fds", "gauge", "Open file descriptors.");
        fprintf(f, "process_open_fds %ld\n", fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        help(f, "process_max_fds", "gauge", "Limit of open file descriptors (soft RLIMIT_NOFILE).");
        fprintf(f, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }

    unsigned long long threads = 0, start_ticks = 0, btime = 0;
    long hz = sysconf(_SC_CLK_TCK);
    bool have_stat = self_stat(&threads, &start_ticks);
    if (have_stat && hz > 0 && boot_time(&btime)) {
        help(f, "process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch, seconds.");
        fprintf(f, "process_start_time_seconds %.2f\n",
                (double)btime + (double)start_ticks / (double)hz);
    }
    if (have_stat && threads > 0) {
        help(f, "process_threads", "gauge", "Threads of the process.");
        fprintf(f, "process_threads %llu\n", threads);
    }
}
