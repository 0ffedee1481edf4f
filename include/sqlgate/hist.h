/* sqlgate latency histogram: fixed buckets, lock-free recording.
 *
 * One set of bucket bounds for every histogram sqlgate keeps (100 µs to 10 s,
 * roughly 1-2.5-5 per decade), so a loopback SQLite query (tens of µs) and a
 * slow remote one both land in a bucket that says something. Recording is two
 * relaxed atomic adds: no lock, no allocation, safe from any thread. A reader
 * takes a snapshot whose count is the sum of its buckets, so the +Inf bucket
 * always equals _count; the sum may trail by a sample or two under load.
 */
#ifndef SQLGATE_HIST_H
#define SQLGATE_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SG_HIST_BOUNDS 16 /* finite upper bounds; one more bucket for +Inf */

/* Upper bounds in seconds, ascending (le="..."). */
extern const double sg_hist_bounds[SG_HIST_BOUNDS];

typedef struct sg_hist {
    atomic_uint_fast64_t bucket[SG_HIST_BOUNDS + 1]; /* not cumulative; last: +Inf */
    atomic_uint_fast64_t sum_ns;
} sg_hist;

typedef struct sg_hist_snap {
    uint64_t cumulative[SG_HIST_BOUNDS + 1]; /* samples <= bound; last = count */
    uint64_t count;
    double sum_seconds;
} sg_hist_snap;

/* A zeroed sg_hist (static or calloc'ed) is ready to use. */

/* One sample of `ns` nanoseconds (negative counts as 0). */
void sg_hist_observe_ns(sg_hist *h, int64_t ns);

/* Copies h into out (cumulative counts). */
void sg_hist_snapshot(const sg_hist *h, sg_hist_snap *out);

#ifdef __cplusplus
}
#endif
#endif
