/* sqlgate clocks: monotonic for deadlines and measuring, wall for reports.
 *
 * Every deadline in the library (driver calls, pool waits, health checks) is
 * an sg_clock_ms() value, so a jump of the wall clock moves none of them.
 */
#ifndef SQLGATE_CLOCK_H
#define SQLGATE_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic clock in milliseconds (for deadlines). */
int64_t sg_clock_ms(void);

/* Monotonic clock in microseconds (for measuring). */
int64_t sg_clock_us(void);

/* Wall clock, milliseconds since the Unix epoch. */
int64_t sg_clock_wall_ms(void);

#ifdef __cplusplus
}
#endif
#endif
