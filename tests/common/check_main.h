/* The one `main` of every Check suite in tests/: runs a suite with the
 * settings Check reads from the environment (CK_RUN_SUITE, CK_RUN_CASE,
 * CK_INCLUDE_TAGS, CK_EXCLUDE_TAGS, CK_FORK, CK_DEFAULT_TIMEOUT,
 * CK_TIMEOUT_MULTIPLIER, and CK_VERBOSITY, normal when unset), as the meson
 * test definitions and the test setups in meson.build set them. */
#ifndef SQLGATE_CHECK_MAIN_H
#define SQLGATE_CHECK_MAIN_H

#include <check.h>

/* Runs every test of s (steals: the runner frees it) and returns the exit
 * status for main: EXIT_SUCCESS when none failed, EXIT_FAILURE otherwise.
 * Whatever the program must do once before the tests fork (environment,
 * library initialisation, files shared by all tests) comes before the call. */
int check_run(Suite *s);

#endif
