/* hist: see sqlgate/hist.h. */
#include "sqlgate/hist.h"

const double sg_hist_bounds[SG_HIST_BOUNDS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10};

/* The bounds in nanoseconds, for an integer comparison on the hot path. */
static const int64_t bounds_ns[SG_HIST_BOUNDS] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};

void sg_hist_observe_ns(sg_hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    /* Most samples are fast: a linear scan from the bottom ends early. */
    unsigned b = 0;
    while (b < SG_HIST_BOUNDS && ns > bounds_ns[b])
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint_fast64_t)ns, memory_order_relaxed);
}

void sg_hist_snapshot(const sg_hist *h, sg_hist_snap *out)
{
    uint64_t cum = 0;
    for (unsigned b = 0; b <= SG_HIST_BOUNDS; b++) {
        cum += atomic_load_explicit(&((sg_hist *)h)->bucket[b], memory_order_relaxed);
        out->cumulative[b] = cum;
    }
    out->count = cum;
    out->sum_seconds =
        (double)atomic_load_explicit(&((sg_hist *)h)->sum_ns, memory_order_relaxed) / 1e9;
}
