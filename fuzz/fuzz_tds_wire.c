/* libFuzzer target: the TDS test server's wire layer (tests/tds/tds_wire.h,
 * tds_types.h), which parses whatever a client sends.
 *
 * Input: byte 0 picks what to drive, byte 1 the client's TDS version
 * (7.1 .. 7.4), the rest is the payload:
 *   0  a packet stream, framed as tds_server.c reads it (headers, EOM,
 *      one type per message, the size cap), each message handed to its
 *      parser by packet type
 *   1  PRELOGIN   2  LOGIN7   3  SQL batch   4  RPC (every parameter value
 *      is then written back as ROW data for its type)
 *   5  a type name (tds_type_parse), its TYPE_INFO, and the rest of the
 *      payload written as a value of that type
 *   6  date/time and decimal text
 *   7  UTF-16LE to UTF-8 and back
 * Checks beyond memory safety: decoded text is valid UTF-8, conversions
 * round-trip where they must, output buffers never fail below their cap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_utf8.h"
#include "tds_types.h"
#include "tds_wire.h"

static const uint32_t versions[] = {0x71000001u, 0x72090002u, 0x730B0003u, 0x74000004u};

static void check_text(const char *s, const char *what)
{
    FUZZ_CHECK(s != NULL, "%s: NULL after success", what);
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)s, strlen(s)), "%s: not UTF-8", what);
}

static void drive_prelogin(const uint8_t *p, size_t n)
{
    tds_prelogin pl;
    if (tds_prelogin_parse(p, n, &pl) != 0)
        return;
    tds_buf b;
    tds_buf_init(&b, 4096);
    tds_prelogin_reply(&b, pl.has_encryption ? pl.encryption : 0);
    FUZZ_CHECK(!b.failed && b.len > 0, "PRELOGIN reply");
    tds_buf_free(&b);
}

static void drive_login7(const uint8_t *p, size_t n)
{
    tds_login7 l;
    char err[256];
    if (tds_login7_parse(p, n, &l, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != '\0', "LOGIN7 failure without a reason");
        return;
    }
    check_text(l.hostname, "hostname");
    check_text(l.username, "username");
    check_text(l.password, "password");
    check_text(l.appname, "appname");
    check_text(l.servername, "servername");
    check_text(l.library, "library");
    check_text(l.language, "language");
    check_text(l.database, "database");
    tds_login7_free(&l);
}

static void drive_batch(const uint8_t *p, size_t n, uint32_t ver)
{
    char *sql = NULL, err[256];
    if (tds_batch_parse(p, n, ver, &sql, err, sizeof err) != 0) {
        FUZZ_CHECK(sql == NULL, "SQL batch failure left text behind");
        return;
    }
    check_text(sql, "SQL batch");
    free(sql);
}

static void drive_rpc(const uint8_t *p, size_t n, uint32_t ver)
{
    tds_rpc rpc;
    char err[256];
    if (tds_rpc_parse(p, n, ver, &rpc, err, sizeof err) != 0) {
        FUZZ_CHECK(rpc.params == NULL && rpc.proc_name == NULL, "RPC failure left state behind");
        return;
    }
    if (rpc.proc_name != NULL)
        check_text(rpc.proc_name, "procedure name");
    for (size_t i = 0; i < rpc.nparams; i++) {
        const tds_param *prm = &rpc.params[i];
        check_text(prm->name, "parameter name");
        if (prm->value.kind == TDS_V_TEXT)
            FUZZ_CHECK(fuzz_utf8_valid(prm->value.p, prm->value.n), "parameter %zu text", i);
        tds_buf b;
        tds_buf_init(&b, 1u << 20);
        int errnum = 0;
        char msg[256] = "";
        if (tds_value_write(&b, &prm->type, &prm->value, ver, &errnum, msg, sizeof msg) != 0)
            FUZZ_CHECK(errnum != 0 && msg[0] != '\0', "conversion failure without an error");
        tds_buf_free(&b);
    }
    tds_rpc_free(&rpc);
}

/* One message, by packet type. */
static void dispatch(uint8_t type, const uint8_t *p, size_t n, uint32_t ver)
{
    switch (type) {
    case TDS_PKT_PRELOGIN:
        drive_prelogin(p, n);
        break;
    case TDS_PKT_LOGIN7:
        drive_login7(p, n);
        break;
    case TDS_PKT_SQL_BATCH:
        drive_batch(p, n, ver);
        break;
    case TDS_PKT_RPC:
        drive_rpc(p, n, ver);
        break;
    default:
        break;
    }
}

/* Frames messages as tds_server.c's read_message does, from memory. */
static void drive_stream(const uint8_t *p, size_t n, uint32_t ver)
{
    tds_buf body;
    tds_buf_init(&body, TDS_MAX_MESSAGE);
    size_t pos = 0;
    while (pos < n) {
        bool first = true;
        uint8_t type = 0;
        tds_buf_reset(&body);
        for (;;) {
            tds_header h;
            if (tds_header_parse(p + pos, n - pos, &h) != 0)
                goto done;
            if (!first && h.type != type)
                goto done;
            if (first)
                type = h.type;
            first = false;
            size_t len = h.length - TDS_HEADER_SIZE;
            if (len > n - pos - TDS_HEADER_SIZE)
                goto done;
            tds_buf_put(&body, p + pos + TDS_HEADER_SIZE, len);
            FUZZ_CHECK(!body.failed, "message buffer failed below its cap");
            pos += TDS_HEADER_SIZE + len;
            if (h.status & TDS_STATUS_EOM)
                break;
        }
        dispatch(type, body.data != NULL ? body.data : (const uint8_t *)"", body.len, ver);
    }
done:
    tds_buf_free(&body);
}

static void drive_type(const uint8_t *p, size_t n, uint32_t ver)
{
    const uint8_t *semi = memchr(p, ';', n);
    size_t tlen = semi != NULL ? (size_t)(semi - p) : n;
    tds_type t;
    if (tds_type_parse((const char *)p, tlen, &t) != 0)
        return;
    FUZZ_CHECK(tds_type_name(t.st) != NULL, "type without a name");
    tds_buf b;
    tds_buf_init(&b, 1u << 20);
    tds_typeinfo_write(&b, &t, ver);
    FUZZ_CHECK(!b.failed && b.len > 0, "TYPE_INFO");
    if (semi != NULL) {
        tds_value v = {.kind = TDS_V_TEXT, .p = semi + 1, .n = n - tlen - 1};
        if (fuzz_utf8_valid(v.p, v.n)) {
            int errnum = 0;
            char msg[256] = "";
            if (tds_value_write(&b, &t, &v, ver, &errnum, msg, sizeof msg) != 0)
                FUZZ_CHECK(errnum != 0 && msg[0] != '\0', "conversion failure without an error");
        }
    }
    tds_buf_free(&b);
}

static void drive_text(const uint8_t *p, size_t n)
{
    tds_datetime dt;
    if (tds_datetime_parse((const char *)p, n, &dt) == 0 && dt.has_date) {
        int y, m, d;
        tds_civil_from_days(tds_days_from_civil(dt.year, dt.month, dt.day), &y, &m, &d);
        FUZZ_CHECK(y == dt.year && m == dt.month && d == dt.day, "date %d-%d-%d round trip",
                   dt.year, dt.month, dt.day);
    }
    static const uint8_t precisions[] = {1, 5, 18, 19, 28, 38};
    for (size_t i = 0; i < sizeof precisions; i++) {
        uint8_t prec = precisions[i], scale = (uint8_t)(n % (prec + 1u));
        bool neg;
        uint32_t mag[4];
        if (tds_decimal_from_text((const char *)p, n, prec, scale, &neg, mag) != 0)
            continue;
        char text[64];
        tds_decimal_to_text(neg, mag, scale, text, sizeof text);
        bool neg2;
        uint32_t mag2[4];
        FUZZ_CHECK(tds_decimal_from_text(text, strlen(text), prec, scale, &neg2, mag2) == 0,
                   "decimal text \"%s\" does not read back", text);
        FUZZ_CHECK(memcmp(mag, mag2, sizeof mag) == 0, "decimal \"%s\" changed on a round trip",
                   text);
    }
}

static bool utf16_paired(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned u = p[i] | (unsigned)p[i + 1] << 8;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 3 >= n)
                return false;
            unsigned lo = p[i + 2] | (unsigned)p[i + 3] << 8;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return false;
            i += 2;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            return false;
        }
    }
    return true;
}

static void drive_utf16(const uint8_t *p, size_t n)
{
    char *s = NULL;
    size_t len = 0;
    if (tds_utf16_to_utf8(p, n, &s, &len) != 0) {
        FUZZ_CHECK(n % 2 != 0, "UTF-16 conversion failed on %zu bytes", n);
        return;
    }
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)s, len), "UTF-16 gave invalid UTF-8");
    FUZZ_CHECK(tds_utf16_units(s, len) == n / 2 || !utf16_paired(p, n), "UTF-16 unit count");
    tds_buf b;
    tds_buf_init(&b, 1u << 22);
    size_t units = tds_buf_utf16(&b, s, len, SIZE_MAX);
    FUZZ_CHECK(!b.failed && units * 2 == b.len, "UTF-16 writer");
    if (utf16_paired(p, n))
        FUZZ_CHECK(b.len == n && (n == 0 || memcmp(b.data, p, n) == 0),
                   "UTF-16 round trip changed the text");
    tds_buf_free(&b);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t ver = versions[data[1] % 4];
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    switch (data[0] % 8) {
    case 0:
        drive_stream(p, n, ver);
        break;
    case 1:
        drive_prelogin(p, n);
        break;
    case 2:
        drive_login7(p, n);
        break;
    case 3:
        drive_batch(p, n, ver);
        break;
    case 4:
        drive_rpc(p, n, ver);
        break;
    case 5:
        drive_type(p, n, ver);
        break;
    case 6:
        drive_text(p, n);
        break;
    default:
        drive_utf16(p, n);
        break;
    }
    return 0;
}
