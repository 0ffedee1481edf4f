/* procstat: the standard process_* metrics of Prometheus client libraries,
 * read from /proc and getrusage when /metrics is rendered. */
#ifndef SQLGATE_PROCSTAT_H
#define SQLGATE_PROCSTAT_H

#include <stdio.h>

/* Writes process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds and process_threads, each with # HELP and
 * # TYPE. A figure that cannot be read (no /proc) is left out. */
void procstat_write(FILE *f);

#endif
