/* cli: the command line of sqlgate (--help, --version, --check-config).
 *
 * The variable list of --help and the settings --check-config prints come
 * from the library's own table (sg_config_variable), so neither can drift
 * from what the loader reads. Nothing here opens a database or a socket.
 */
#ifndef SQLGATE_CLI_H
#define SQLGATE_CLI_H

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

/* Checks what a normal start would refuse after loading the snapshot but
 * before opening anything (a driver not built in, HTTPS without TLS support
 * in libmicrohttpd). Writes one "sqlgate: configuration error: NAME: problem"
 * line per problem to f (borrowed) and returns how many there were. */
int cli_check_extra(FILE *f, const sg_config *cfg);

/* Prints the effective configuration of cfg (borrowed) to f: the service
 * settings, then every database with every setting. Secrets are shown as
 * "(set, redacted)" or "(not set)", never their value. lookup and ud are
 * the source cfg was loaded from; they answer for variables the snapshot
 * does not keep (a URL, *_FILE paths). */
void cli_print_config(FILE *f, const sg_config *cfg, sg_lookup_fn lookup, void *ud);

#endif
