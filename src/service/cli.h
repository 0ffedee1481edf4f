/* cli: the command line of sqlgate (--help, --version, --check-config).
 *
 * The variable list of --help and the settings --check-config prints come
 * from the library's own table (sg_config_variable), so neither can drift
 * from what the loader reads. Nothing here opens a database or a socket.
 */
#ifndef SQLGATE_CLI_H
#define SQLGATE_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "sqlgate/config.h"

#define CLI_EXIT_USAGE 2 /* unknown option, like a bad configuration */

typedef enum cli_action {
    CLI_RUN,          /* no option: serve */
    CLI_HELP,         /* --help, -h */
    CLI_VERSION,      /* --version */
    CLI_CHECK_CONFIG, /* --check-config */
    CLI_BAD_USAGE     /* anything else; the usage is already on stderr */
} cli_action;

/* Decides what to do from argv (borrowed). --help wins over --version, which
 * wins over --check-config. On CLI_BAD_USAGE the offending argument and the
 * usage have been written to stderr. */
cli_action cli_parse(int argc, char **argv);

/* One-paragraph usage (f borrowed). */
void cli_usage(FILE *f);

/* Usage, options and every variable with its default and meaning. */
void cli_help(FILE *f);

/* "sqlgate <version>" and a newline. */
void cli_version(FILE *f);

/* One finding of cli_check. */
typedef struct cli_finding {
    bool error;             /* a start refuses the configuration; else a warning */
    const sg_db_config *db; /* the database it is about (borrowed), or NULL */
    char text[384];         /* "NAME: problem", the line --check-config prints */
    const char *log;        /* what a running service logs for a warning (static) */
    const char *variable;   /* the variable it names in that log (static) */
} cli_finding;

/* Called once per finding; f is valid during the call only. */
typedef void (*cli_finding_fn)(void *ud, const cli_finding *f);

/* The checks a start, a reload and --check-config make after loading the
 * snapshot but before opening anything, in one place: errors for a driver not
 * built in and for HTTPS without TLS support in libmicrohttpd, a warning for a
 * SQL Server whose certificate is not verified (encryption required, no CA
 * file). Calls fn (may be NULL) for each; returns the number of errors. */
int cli_check(const sg_config *cfg, cli_finding_fn fn, void *ud);

/* cli_check's errors as "sqlgate: configuration error: NAME: problem" lines
 * on f (borrowed); returns how many there were. */
int cli_check_extra(FILE *f, const sg_config *cfg);

/* Prints the effective configuration of cfg (borrowed) to f: the service
 * settings, then every database with every setting. Secrets are shown as
 * "(set, redacted)" or "(not set)", never their value. lookup and ud are
 * the source cfg was loaded from; they answer for variables the snapshot
 * does not keep (a URL, *_FILE paths). */
void cli_print_config(FILE *f, const sg_config *cfg, sg_lookup_fn lookup, void *ud);

#endif
