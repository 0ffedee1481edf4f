/* Shared by the libFuzzer targets in fuzz/ (see fuzz/README.md).
 *
 * A failed check calls fuzz_fail, which prints why and aborts: libFuzzer
 * then saves the input as a crash. Nothing here is part of sqlgate.
 */
#ifndef SQLGATE_FUZZ_COMMON_H
#define SQLGATE_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sqlgate/config.h"

#if defined(__GNUC__)
#define FUZZ_NORETURN __attribute__((noreturn))
#define FUZZ_PRINTF   __attribute__((format(printf, 1, 2)))
#else
#define FUZZ_NORETURN
#define FUZZ_PRINTF
#endif

/* libFuzzer's entry points. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Prints "fuzz check failed: ..." on stderr and aborts. */
FUZZ_NORETURN FUZZ_PRINTF void fuzz_fail(const char *fmt, ...);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__VA_ARGS__);                                                                \
    } while (0)

/* --- Reading structure out of the input ----------------------------------- */

/* Consumes the input front to back; past the end every read gives zeros. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t left;
} fuzz_in;

uint8_t fuzz_u8(fuzz_in *in);
uint64_t fuzz_u64(fuzz_in *in);
/* Up to max bytes: a length byte, then that many bytes (borrowed), fewer when
 * the input ends. */
const uint8_t *fuzz_bytes(fuzz_in *in, size_t max, size_t *len);

/* --- Configuration --------------------------------------------------------- */

/* A variable's value as the fuzz targets hand it to sg_config_load.
 * Variables whose name ends in _FILE never name a path from the input (a
 * fuzzer must not open /dev/stdin or a FIFO): their value picks one of the
 * files of a private directory made once per process (a secret, an empty
 * file, a file with a NUL byte, one over the 64 KB cap, tokens, a directory,
 * a missing path). Secret variables (*_PASSWORD, SQLGATE_API_TOKENS) get
 * FUZZ_SECRET in front of their value, so that fuzz_check_config can tell
 * whether a secret leaked into an error. Returns a string borrowed from
 * value or static storage. */
const char *fuzz_config_value(const char *name, const char *value);

#define FUZZ_SECRET "fzSECRETfz"

/* Loads the configuration through lookup/ud, then checks: exactly one of
 * snapshot and errors; every error line "NAME: message" names a variable
 * the loader asked for (or is the "(N more problems not shown)" line); no
 * error line holds FUZZ_SECRET unless secrets_may_show (the marker also
 * appears in a value that is not secret); a snapshot is consistent with
 * docs/configuration.md (bounds, default database). Frees everything. */
void fuzz_check_config(sg_lookup_fn lookup, void *ud, bool secrets_may_show);

#endif
