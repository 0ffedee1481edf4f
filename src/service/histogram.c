/* histogram: see histogram.h. */
#include "histogram.h"

void hist_write(FILE *f, const char *name, const char *labels, const sg_hist_snap *s)
{
    const char *sep = labels[0] != '\0' ? "," : "";
    for (unsigned b = 0; b < SG_HIST_BOUNDS; b++)
        fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, sg_hist_bounds[b],
                (unsigned long long)s->cumulative[b]);
    fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
            (unsigned long long)s->count);
    if (labels[0] != '\0') {
        fprintf(f, "%s_sum{%s} %.9f\n", name, labels, s->sum_seconds);
        fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)s->count);
    } else {
        fprintf(f, "%s_sum %.9f\n", name, s->sum_seconds);
        fprintf(f, "%s_count %llu\n", name, (unsigned long long)s->count);
    }
}
