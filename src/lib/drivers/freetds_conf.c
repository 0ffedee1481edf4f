/* freetds_conf: the private freetds.conf, for what db-lib only reads there.
 *
 * db-lib has no call for a connection's encryption or CA file: FreeTDS reads
 * them from a freetds.conf section. So ft_prepare writes, once at start, a
 * private copy (mkstemp: mode 0600) of the file FreeTDS would read, with one
 * section per database that needs such settings, and points
 * FREETDSCONF at it; ft_open then names that section instead of host:port.
 * The file is removed at exit (atexit) and by the driver's discard().
 */
#include "freetds_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The section name a generated freetds.conf gives this database. */
void ft_section_name(const sg_db_config *cfg, char *out, size_t n)
{
    snprintf(out, n, "sqlgate_%s", cfg->name);
}

/* Settings db-lib can only take from freetds.conf (encryption, CA file). */
bool ft_needs_section(const sg_db_config *cfg)
{
    return cfg->encrypt != SG_ENCRYPT_REQUEST || cfg->ca_file != NULL;
}

/* The configuration file FreeTDS would read without us. */
static const char *user_conf(char *buf, size_t n)
{
    const char *env = getenv("FREETDSCONF");
    if (env != NULL)
        return env;
    const char *home = getenv("HOME");
    if (home != NULL) {
        snprintf(buf, n, "%s/.freetds.conf", home);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    return "/etc/freetds/freetds.conf";
}

/* Where ft_prepare wrote the file; "" when it did not. Static storage, so
 * that ft_remove_conf needs no allocation or lock. */
static char conf_path[PATH_MAX];

/* atexit handler and the driver's discard(): unlink() only, no locks. */
void ft_remove_conf(void)
{
    if (conf_path[0] != '\0')
        unlink(conf_path);
}

int ft_prepare(const sg_config *cfg, sg_err *err)
{
    bool any = false;
    for (size_t i = 0; i < cfg->n_databases; i++)
        if (strcmp(cfg->databases[i].driver, "freetds") == 0 &&
            ft_needs_section(&cfg->databases[i]))
            any = true;
    if (!any)
        return 0;
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    int len = snprintf(conf_path, sizeof conf_path, "%s/sqlgate-freetds-XXXXXX", tmp);
    if (len < 0 || (size_t)len >= sizeof conf_path) {
        conf_path[0] = '\0';
        return sg_err_set(err, SG_INTERNAL,
                          "cannot write a freetds.conf for the encryption settings: TMPDIR is "
                          "longer than PATH_MAX");
    }
    int fd = mkstemp(conf_path);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (out == NULL) {
        if (fd >= 0)
            close(fd);
        conf_path[0] = '\0';
        return sg_err_set(err, SG_INTERNAL,
                          "cannot write a freetds.conf for the encryption "
                          "settings");
    }
    /* Keep whatever the user's own file says, then add one section per
     * database that needs settings db-lib's API cannot carry. */
    char buf[512];
    FILE *in = fopen(user_conf(buf, sizeof buf), "r");
    if (in != NULL) {
        size_t got;
        char chunk[4096];
        while ((got = fread(chunk, 1, sizeof chunk, in)) > 0)
            fwrite(chunk, 1, got, out);
        fclose(in);
    }
    static const char *const enc[] = {"off", "request", "require"};
    for (size_t i = 0; i < cfg->n_databases; i++) {
        const sg_db_config *d = &cfg->databases[i];
        if (strcmp(d->driver, "freetds") != 0 || !ft_needs_section(d))
            continue;
        ft_section_name(d, buf, sizeof buf);
        fprintf(out, "\n[%s]\n\thost = %s\n\tport = %d\n\tencryption = %s\n", buf, d->host, d->port,
                enc[d->encrypt]);
        if (d->ca_file != NULL)
            fprintf(out, "\tca file = %s\n", d->ca_file);
    }
    if (fclose(out) != 0) {
        ft_remove_conf();
        return sg_err_set(err, SG_INTERNAL, "cannot write a freetds.conf");
    }
    atexit(ft_remove_conf);
    setenv("FREETDSCONF", conf_path, 1);
    return 0;
}
