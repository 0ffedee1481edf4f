/* sqlgate API tokens and their scopes.
 *
 * A token set is built while the configuration loads and is immutable after
 * that; it lives in the sg_config snapshot, so replacing the snapshot rotates
 * every token at once. Tokens are kept only as SHA-256 digests: a plain token
 * is hashed as it is added and its text is never stored. Look-ups hash the
 * presented token and compare digests in constant time.
 *
 * Tokens file format (SQLGATE_TOKENS_FILE), one token a line:
 *
 *   # comment                      blank lines and '#' lines are ignored
 *   <token>  [scope words...]      a '#' word ends the line (trailing comment)
 *   sha256:<64 hex>  [scope words...]
 *
 * A plain token is printable ASCII without blanks, at least SG_TOKEN_MIN_LEN
 * characters, and may not start with a scope word.
 *
 * Scope words: db=NAMES (`*` or a comma list; without it, no database), ro
 * (the default) or rw, admin, metrics.
 */
#ifndef SQLGATE_TOKENS_H
#define SQLGATE_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sg_scope {
    SG_SCOPE_RW = 1u << 0,      /* queries may write (else read-only) */
    SG_SCOPE_ADMIN = 1u << 1,   /* pause, resume, reconnect (and reload with ALL_DBS) */
    SG_SCOPE_METRICS = 1u << 2, /* GET /metrics when SQLGATE_METRICS_ACCESS=token */
    SG_SCOPE_ALL_DBS = 1u << 3, /* db=*: every database, also ones added later */
} sg_scope;

/* What a token from SQLGATE_API_TOKENS (or no token configuration) grants. */
#define SG_SCOPE_EVERY (SG_SCOPE_RW | SG_SCOPE_ADMIN | SG_SCOPE_METRICS | SG_SCOPE_ALL_DBS)

#define SG_TOKEN_FINGERPRINT_LEN 8 /* hex digits: the start of the token's SHA-256 */
/* Shortest plain token accepted: a token is a password that clients keep in
 * files, so it must not be guessable (see docs/security.md). */
#define SG_TOKEN_MIN_LEN 16

typedef struct sg_tokens sg_tokens;
typedef struct sg_token sg_token;

/* Why token (len bytes, borrowed) cannot serve as a secret: shorter than
 * SG_TOKEN_MIN_LEN, or a placeholder copied from an example file (it holds
 * "change-me", "replace-me", ...). NULL when it is acceptable. The answer is
 * a static phrase that never quotes the token ("is shorter than ..."). Both
 * sources of tokens (SQLGATE_API_TOKENS and the tokens file) apply it. */
const char *sg_token_weakness(const char *token, size_t len);

/* New empty set, or NULL when out of memory. */
sg_tokens *sg_tokens_new(void) SG_MUST_USE;

void sg_tokens_free(sg_tokens *set); /* accepts NULL */

/* Adds a plain token (len bytes, borrowed; not kept) with the given scopes
 * (without SG_SCOPE_ALL_DBS it reaches no database). 0, or -1 when out of
 * memory or when the same token is already in the set (SG_BAD_REQUEST). */
int sg_tokens_add(sg_tokens *set, const char *token, size_t len, unsigned scopes,
                  sg_err *err) SG_MUST_USE;

/* Maps a database name written after db= to the name stored (e.g. the
 * `default` alias to the database it names); NULL when there is no such
 * database. The returned string is borrowed for the call. */
typedef const char *(*sg_tokens_db_fn)(void *ud, const char *name);

/* Parses a tokens file's text (len bytes, need not be NUL-terminated) and
 * adds its tokens to set. resolve may be NULL (any well-formed name is
 * accepted as written). On success returns 0 and sets *errors to NULL. On
 * failure returns -1 and sets *errors to a new string (caller frees), one line
 * per problem, each "<origin>:<line>: ...", never quoting a token; the set
 * then holds an unspecified subset of the lines and should be freed. At most
 * 50 problems are listed, then a count. */
int sg_tokens_parse(sg_tokens *set, const char *text, size_t len, const char *origin,
                    sg_tokens_db_fn resolve, void *ud, char **errors) SG_MUST_USE;

size_t sg_tokens_count(const sg_tokens *set); /* set may be NULL: 0 */

/* The token whose SHA-256 equals that of `presented` (len bytes), or NULL.
 * Every entry is compared, in constant time each. Borrowed from set. */
const sg_token *sg_tokens_find(const sg_tokens *set, const char *presented, size_t len);

/* The token every request carries when no token is configured: every scope,
 * fingerprint "anonymous". Static. */
const sg_token *sg_token_anonymous(void);

unsigned sg_token_scopes(const sg_token *t); /* sg_scope bits */

/* May the token query database `name` (a real name, not the alias)? */
bool sg_token_may_db(const sg_token *t, const char *name);

/* The token's fingerprint (SG_TOKEN_FINGERPRINT_LEN hex digits), borrowed. */
const char *sg_token_fingerprint(const sg_token *t);

/* Fingerprint of any presented string (for tokens that matched nothing):
 * writes SG_TOKEN_FINGERPRINT_LEN hex digits and a NUL into out. */
void sg_token_fingerprint_of(const char *presented, size_t len,
                             char out[SG_TOKEN_FINGERPRINT_LEN + 1]);

#ifdef __cplusplus
}
#endif
#endif
