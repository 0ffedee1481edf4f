/* histogram: writes sqlgate's latency histograms (sqlgate/hist.h) in the
 * Prometheus text format. */
#ifndef SQLGATE_HISTOGRAM_H
#define SQLGATE_HISTOGRAM_H

#include <stdio.h>

#include "sqlgate/hist.h"

/* Writes name_bucket (cumulative, one line per bound and +Inf), name_sum and
 * name_count for one series. labels (borrowed) is the label text without
 * braces, already escaped ("db=\"core\""), or "" for none. The caller writes
 * # HELP and # TYPE once per metric. */
void hist_write(FILE *f, const char *name, const char *labels, const sg_hist_snap *s);

#endif
