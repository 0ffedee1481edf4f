/* Check suite for src/service/qreq.c: the query request body decoder and its
 * JSON parser.
 * - accepted bodies decode to exactly the fields and parameters expected
 *   (int64 edges, reals as jansson types them, escapes, surrogate pairs,
 *   UTF-8, parameter order, unknown members of any shape);
 * - every syntax rule of RFC 8259 (as jansson applies it with
 *   JSON_REJECT_DUPLICATES) is an error with its position and reason, and
 *   every field problem keeps the message and the order of checks of the
 *   jansson-based decoder this parser replaced;
 * - the caps: nesting depth, 2100 parameters, many keys (the hash table). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "qreq.h"

#define SYN(line, col, why) "the body is not valid JSON (line " #line ", column " #col "): " why
#define NUL_MSG             "the body contains a NUL character (\\u0000), which is not allowed"
#define PARAM_NAME_MSG(name)                                                                       \
    "params: \"" name "\" is not a parameter name (letters, digits and _, not starting with a "    \
    "digit, without '@')"
#define PARAM_VALUE_MSG(name, kind)                                                                \
    "params." name ": " kind " is not a supported value (use a string, number, boolean or null)"

/* --- Rejected bodies ----------------------------------------------------------- */

typedef struct bad_case {
    const char *what;
    const char *body;
    size_t len;
    const char *message;
} bad_case;

/* Bodies are literals; their length is taken with sizeof so NUL bytes count. */
#define BAD(what, body, message)                                                                   \
    {                                                                                              \
        what, body, sizeof body - 1, message                                                       \
    }

static const bad_case BAD_CASES[] = {
    /* the document */
    BAD("empty", "", SYN(1, 1, "expected a JSON object ('{'), found the end of the body")),
    BAD("only space", " \t\r\n ",
        SYN(2, 2, "expected a JSON object ('{'), found the end of the body")),
    BAD("string body", "\"SELECT 1\"", SYN(1, 1, "expected a JSON object ('{'), found '\"'")),
    BAD("null body", "null", SYN(1, 1, "expected a JSON object ('{'), found 'n'")),
    BAD("number body", "42", SYN(1, 1, "expected a JSON object ('{'), found '4'")),
    BAD("BOM", "\xEF\xBB\xBF{\"sql\":\"SELECT 1\"}",
        SYN(1, 1, "expected a JSON object ('{'), found byte 0xEF")),
    BAD("UTF-16", "\xFF\xFE{\0}\0", SYN(1, 1, "expected a JSON object ('{'), found byte 0xFF")),
    BAD("open object", "{", SYN(1, 2, "expected a key (a string), found the end of the body")),
    BAD("unclosed object", "{\"sql\":\"SELECT 1\"",
        SYN(1, 18, "expected ',' or '}', found the end of the body")),
    BAD("unclosed array", "[1,[2]", SYN(1, 7, "expected ',' or ']', found the end of the body")),
    BAD("trailing garbage", "{\"sql\":\"SELECT 1\"} x",
        SYN(1, 20, "expected the end of the body after its object, found 'x'")),
    BAD("two documents", "{\"sql\":\"SELECT 1\"}{}",
        SYN(1, 19, "expected the end of the body after its object, found '{'")),
    BAD("garbage on a later line", "{\"sql\":\"SELECT 1\"}\n\n  x",
        SYN(3, 3, "expected the end of the body after its object, found 'x'")),
    BAD("raw NUL after the body", "{\"sql\":\"SELECT 1\"}\0garbage",
        SYN(1, 19, "expected the end of the body after its object, found byte 0x00")),
    BAD("form feed is not space", "{\f\"sql\":\"SELECT 1\"}",
        SYN(1, 2, "expected a key (a string), found byte 0x0C")),
    BAD("non-breaking space is not space", "{\xC2\xA0\"sql\":\"SELECT 1\"}",
        SYN(1, 2, "expected a key (a string), found byte 0xC2")),
    BAD("column counts characters", "{\"a\":\"\xC3\xA9\xC3\xA9\", x}",
        SYN(1, 12, "expected a key (a string), found 'x'")),

    /* objects and arrays */
    BAD("trailing comma in an object", "{\"sql\":\"x\",}",
        SYN(1, 12, "expected a key (a string), found '}'")),
    BAD("trailing comma in an array", "{\"sql\":\"x\",\"a\":[1,]}",
        SYN(1, 19, "expected a value, found ']'")),
    BAD("leading comma", "{\"a\":[,1],\"sql\":\"x\"}", SYN(1, 7, "expected a value, found ','")),
    BAD("missing colon", "{\"sql\" \"x\"}", SYN(1, 8, "expected ':' after a key, found '\"'")),
    BAD("missing comma", "{\"sql\":\"x\" \"y\":1}", SYN(1, 12, "expected ',' or '}', found '\"'")),
    BAD("missing comma in an array", "[1 2]", SYN(1, 4, "expected ',' or ']', found '2'")),
    BAD("single-quoted key", "{'sql':1}", SYN(1, 2, "expected a key (a string), found '''")),
    BAD("bare key", "{sql:1}", SYN(1, 2, "expected a key (a string), found 's'")),
    BAD("number key", "{1:1}", SYN(1, 2, "expected a key (a string), found '1'")),
    BAD("mismatched bracket", "{\"sql\":\"x\",\"a\":[1}",
        SYN(1, 18, "expected ',' or ']', found '}'")),
    BAD("missing value", "{\"sql\":}", SYN(1, 8, "expected a value, found '}'")),
    BAD("comment", "{\"sql\":\"x\" /* c */}", SYN(1, 12, "expected ',' or '}', found '/'")),

    /* literals */
    BAD("truncated true", "[tru]", SYN(1, 2, "expected a value, found 't'")),
    BAD("capitalised", "[True]", SYN(1, 2, "expected a value, found 'T'")),
    BAD("literal with a tail", "[falsey]", SYN(1, 7, "expected ',' or ']', found 'y'")),
    BAD("NaN", "[NaN]", SYN(1, 2, "expected a value, found 'N'")),
    BAD("Infinity", "[-Infinity]", SYN(1, 3, "expected a digit, found 'I'")),
    BAD("undefined", "[undefined]", SYN(1, 2, "expected a value, found 'u'")),
    BAD("raw NUL after a literal (jansson skips it)", "[true\0]",
        SYN(1, 6, "expected ',' or ']', found byte 0x00")),

    /* numbers */
    BAD("leading zero", "[01]", SYN(1, 2, "a number must not start with 0")),
    BAD("negative leading zero", "[-01]", SYN(1, 2, "a number must not start with 0")),
    BAD("lone minus", "[-]", SYN(1, 3, "expected a digit, found ']'")),
    BAD("plus sign", "[+1]", SYN(1, 2, "expected a value, found '+'")),
    BAD("no integer part", "[.5]", SYN(1, 2, "expected a value, found '.'")),
    BAD("no fraction digits", "[1.]", SYN(1, 4, "expected a digit after '.', found ']'")),
    BAD("fraction then exponent", "[1.e2]", SYN(1, 4, "expected a digit after '.', found 'e'")),
    BAD("empty exponent", "[1e]", SYN(1, 4, "expected a digit in the exponent, found ']'")),
    BAD("signed empty exponent", "[1E+]", SYN(1, 5, "expected a digit in the exponent, found ']'")),
    BAD("number at the end", "[1.",
        SYN(1, 4, "expected a digit after '.', found the end of the body")),
    BAD("hex", "[0x10]", SYN(1, 3, "expected ',' or ']', found 'x'")),
    BAD("two points", "[1.5.2]", SYN(1, 5, "expected ',' or ']', found '.'")),
    BAD("INT64_MAX + 1", "[9223372036854775808]", SYN(1, 2, "the integer does not fit in 64 bits")),
    BAD("INT64_MIN - 1", "[-9223372036854775809]",
        SYN(1, 2, "the integer does not fit in 64 bits")),
    BAD("2^64", "{\"sql\":\"x\",\"max_rows\":18446744073709551616}",
        SYN(1, 23, "the integer does not fit in 64 bits")),
    BAD("huge integer", "{\"sql\":\"SELECT 1\",\"max_rows\":99999999999999999999999}",
        SYN(1, 30, "the integer does not fit in 64 bits")),
    BAD("real overflow", "{\"sql\":\"SELECT 1\",\"max_rows\":1e999}",
        SYN(1, 30, "the number is too large")),
    BAD("negative real overflow", "[-1.8e308]", SYN(1, 2, "the number is too large")),
    BAD("long real overflow",
        "[1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        ".0]",
        SYN(1, 2, "the number is too large")),
    BAD("raw NUL after a number (jansson skips it)", "{\"sql\":\"x\",\"a\":1\0}",
        SYN(1, 17, "expected ',' or '}', found byte 0x00")),

    /* strings */
    BAD("unterminated", "[\"abc", SYN(1, 6, "a string is not closed before the end of the body")),
    BAD("unterminated after a backslash", "[\"abc\\", SYN(1, 6, "invalid escape in a string")),
    BAD("control character", "{\"sql\":\"SELECT 1\x01\"}",
        SYN(1, 17, "control character 0x01 in a string (it must be escaped)")),
    BAD("raw newline", "[\"a\nb\"]",
        SYN(1, 4, "control character 0x0A in a string (it must be escaped)")),
    BAD("raw tab", "[\"a\tb\"]",
        SYN(1, 4, "control character 0x09 in a string (it must be escaped)")),
    BAD("raw NUL in sql", "{\"sql\":\"SELECT 1\0; DELETE FROM users\"}",
        SYN(1, 17, "control character 0x00 in a string (it must be escaped)")),
    BAD("raw NUL in a parameter name", "{\"sql\":\"SELECT 1\",\"params\":{\"a\0b\":1}}",
        SYN(1, 31, "control character 0x00 in a string (it must be escaped)")),
    BAD("unknown escape", "[\"\\x\"]", SYN(1, 3, "invalid escape in a string")),
    BAD("escaped quote character", "[\"\\'\"]", SYN(1, 3, "invalid escape in a string")),
    BAD("upper-case U", "[\"\\U0041\"]", SYN(1, 3, "invalid escape in a string")),
    BAD("short \\u", "[\"\\u12\"]", SYN(1, 3, "invalid escape in a string")),
    BAD("\\u with a non-hex digit", "[\"\\u12G4\"]", SYN(1, 3, "invalid escape in a string")),
    BAD("\\u cut by the end", "[\"\\u12", SYN(1, 3, "invalid escape in a string")),
    BAD("lone high surrogate", "{\"sql\":\"SELECT '\\ud800'\"}",
        SYN(1, 17, "\\uD800 is half of a surrogate pair, alone")),
    BAD("high surrogate then a letter", "[\"\\ud800\\u0041\"]",
        SYN(1, 3, "\\uD800 is half of a surrogate pair, alone")),
    BAD("high surrogate then text", "[\"\\uDBFFx\"]",
        SYN(1, 3, "\\uDBFF is half of a surrogate pair, alone")),
    BAD("two high surrogates", "[\"\\ud800\\ud800\"]",
        SYN(1, 3, "\\uD800 is half of a surrogate pair, alone")),
    BAD("high surrogate then a bad escape", "[\"\\ud800\\uZZZZ\"]",
        SYN(1, 3, "\\uD800 is half of a surrogate pair, alone")),
    BAD("lone low surrogate", "{\"sql\":\"x\",\"params\":{\"a\":\"\\udc00\"}}",
        SYN(1, 27, "\\uDC00 is half of a surrogate pair, alone")),
    BAD("reversed pair", "[\"\\udc00\\ud800\"]",
        SYN(1, 3, "\\uDC00 is half of a surrogate pair, alone")),

    /* UTF-8 */
    BAD("byte 0xFF", "{\"sql\":\"SELECT '\xff'\"}", SYN(1, 17, "invalid UTF-8 (byte 0xFF)")),
    BAD("lone continuation byte", "[\"\x80\"]", SYN(1, 3, "invalid UTF-8 (byte 0x80)")),
    BAD("truncated sequence", "{\"sql\":\"SELECT '\xe2\x82'\"}",
        SYN(1, 17, "invalid UTF-8 (byte 0xE2)")),
    BAD("sequence cut by the end", "[\"\xe2\x82", SYN(1, 3, "invalid UTF-8 (byte 0xE2)")),
    BAD("overlong 2 bytes", "{\"sql\":\"SELECT '\xc0\xaf'\"}",
        SYN(1, 17, "invalid UTF-8 (byte 0xC0)")),
    BAD("overlong 3 bytes", "[\"\xe0\x80\xaf\"]", SYN(1, 3, "invalid UTF-8 (byte 0xE0)")),
    BAD("overlong 4 bytes", "[\"\xf0\x80\x80\xaf\"]", SYN(1, 3, "invalid UTF-8 (byte 0xF0)")),
    BAD("encoded surrogate", "{\"sql\":\"SELECT '\xed\xa0\x80'\"}",
        SYN(1, 17, "invalid UTF-8 (byte 0xED)")),
    BAD("above U+10FFFF", "[\"\xf4\x90\x80\x80\"]", SYN(1, 3, "invalid UTF-8 (byte 0xF4)")),
    BAD("five-byte sequence", "{\"sql\":\"SELECT '\xf8\x88\x80\x80\x80'\"}",
        SYN(1, 17, "invalid UTF-8 (byte 0xF8)")),
    BAD("bad continuation", "{\"sql\":\"x\",\"params\":{\"a\":\"\xc3\x28\"}}",
        SYN(1, 27, "invalid UTF-8 (byte 0xC3)")),
    BAD("invalid UTF-8 in a key", "{\"sql\":\"x\",\"params\":{\"\xff\":1}}",
        SYN(1, 23, "invalid UTF-8 (byte 0xFF)")),
    BAD("invalid UTF-8 in an ignored member", "{\"sql\":\"SELECT 1\",\"x\":\"\xfe\"}",
        SYN(1, 24, "invalid UTF-8 (byte 0xFE)")),
    BAD("UTF-8 outside strings", "{\"sql\":\"x\",\xc3\xa9:1}",
        SYN(1, 12, "expected a key (a string), found byte 0xC3")),

    /* \u0000 */
    BAD("escaped NUL in sql", "{\"sql\":\"SELECT 1\\u0000; DELETE FROM users\"}", NUL_MSG),
    BAD("escaped NUL in a parameter", "{\"sql\":\"SELECT @a\",\"params\":{\"a\":\"\\u0000\"}}",
        NUL_MSG),
    BAD("escaped NUL in a parameter name", "{\"sql\":\"SELECT 1\",\"params\":{\"a\\u0000\":1}}",
        NUL_MSG),
    BAD("escaped NUL in a long key", "{\"sql\":\"x\",\"abcdefghijklmnopqrstuvwxyz\\u0000\":1}",
        NUL_MSG),
    BAD("escaped NUL in database", "{\"sql\":\"SELECT 1\",\"database\":\"co\\u0000\"}", NUL_MSG),
    BAD("escaped NUL deep in an ignored member", "{\"x\":[{\"y\":[\"\\u0000\"]}],\"sql\":\"x\"}",
        NUL_MSG),
    BAD("NUL wins over a later field problem", "{\"sql\":1,\"x\":\"\\u0000\"}", NUL_MSG),
    BAD("a syntax error later in the string wins over NUL", "[\"\\u0000\x01\"]",
        SYN(1, 9, "control character 0x01 in a string (it must be escaped)")),

    /* duplicate keys */
    BAD("duplicate sql", "{\"sql\":\"SELECT 1\",\"sql\":\"SELECT 2\"}",
        SYN(1, 19, "duplicate key \"sql\"")),
    BAD("duplicate parameter", "{\"sql\":\"x\",\"params\":{\"a\":1,\"b\":2,\"a\":3}}",
        SYN(1, 34, "duplicate key \"a\"")),
    BAD("duplicate through an escape", "{\"a\":1,\"\\u0061\":2}", SYN(1, 8, "duplicate key \"a\"")),
    BAD("duplicate deep in an ignored member",
        "{\"sql\":\"x\",\"x\":[[{\"k\":{\"a\":1,\"a\":2}}]]}", SYN(1, 30, "duplicate key \"a\"")),
    BAD("duplicate params", "{\"sql\":\"x\",\"params\":{},\"params\":{}}",
        SYN(1, 24, "duplicate key \"params\"")),
    BAD("duplicate empty key", "{\"\":1,\"\":2}", SYN(1, 7, "duplicate key \"\"")),
    BAD("duplicate after the key set grows",
        "{\"sql\":\"x\",\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,\"k7\":1,\"k8\":1,"
        "\"k9\":1,\"k10\":1,\"k11\":1,\"k12\":1,\"k13\":1,\"k14\":1,\"k15\":1,\"k16\":1,\"k17\":1,"
        "\"k3\":2}",
        SYN(1, 139, "duplicate key \"k3\"")),
    BAD("duplicate key message cut at a character",
        "{\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
        "\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\":1,"
        "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\":2}",
        SYN(1, 38,
            "duplicate key \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
            "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
            "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
            "\xc3\xa9\xc3\xa9\"")),

    /* the body's type */
    BAD("array body", "[]", "the body must be a JSON object, not an array"),
    BAD("array holding a request", "[{\"sql\":\"SELECT 1\"}]",
        "the body must be a JSON object, not an array"),

    /* sql */
    BAD("missing sql", "{}", "sql is required"),
    BAD("missing sql with params", "{\"params\":{\"a\":1}}", "sql is required"),
    BAD("sql in a nested object only", "{\"x\":{\"sql\":\"SELECT 1\"}}", "sql is required"),
    BAD("sql number", "{\"sql\":1}", "sql must be a string, not an integer"),
    BAD("sql real", "{\"sql\":1.5}", "sql must be a string, not a number"),
    BAD("sql null", "{\"sql\":null}", "sql must be a string, not null"),
    BAD("sql true", "{\"sql\":true}", "sql must be a string, not a boolean"),
    BAD("sql array", "{\"sql\":[\"SELECT 1\"]}", "sql must be a string, not an array"),
    BAD("sql object", "{\"sql\":{\"a\":\"SELECT 1\"}}", "sql must be a string, not an object"),
    BAD("empty sql", "{\"sql\":\"\"}", "sql must not be empty"),

    /* database, operation, rows_as */
    BAD("database number", "{\"sql\":\"SELECT 1\",\"database\":5}",
        "database must be a string, not an integer"),
    BAD("database false", "{\"sql\":\"SELECT 1\",\"database\":false}",
        "database must be a string, not a boolean"),
    BAD("operation number", "{\"sql\":\"SELECT 1\",\"operation\":5}",
        "operation must be a string, not an integer"),
    BAD("operation array", "{\"sql\":\"SELECT 1\",\"operation\":[]}",
        "operation must be a string, not an array"),
    BAD("rows_as number", "{\"sql\":\"SELECT 1\",\"rows_as\":1}",
        "rows_as must be a string, not an integer"),
    BAD("rows_as unknown", "{\"sql\":\"SELECT 1\",\"rows_as\":\"rows\"}",
        "rows_as must be \"objects\" or \"arrays\""),
    BAD("rows_as capitalised", "{\"sql\":\"SELECT 1\",\"rows_as\":\"Arrays\"}",
        "rows_as must be \"objects\" or \"arrays\""),
    BAD("rows_as with a tail", "{\"sql\":\"SELECT 1\",\"rows_as\":\"arrays \"}",
        "rows_as must be \"objects\" or \"arrays\""),

    /* max_rows, timeout_ms */
    BAD("max_rows 0", "{\"sql\":\"SELECT 1\",\"max_rows\":0}", "max_rows must be an integer >= 1"),
    BAD("max_rows -0", "{\"sql\":\"SELECT 1\",\"max_rows\":-0}",
        "max_rows must be an integer >= 1"),
    BAD("max_rows negative", "{\"sql\":\"SELECT 1\",\"max_rows\":-1}",
        "max_rows must be an integer >= 1"),
    BAD("max_rows INT64_MIN", "{\"sql\":\"SELECT 1\",\"max_rows\":-9223372036854775808}",
        "max_rows must be an integer >= 1"),
    BAD("max_rows real", "{\"sql\":\"SELECT 1\",\"max_rows\":1.5}",
        "max_rows must be an integer >= 1, not a number"),
    BAD("max_rows with an exponent is real", "{\"sql\":\"SELECT 1\",\"max_rows\":1e2}",
        "max_rows must be an integer >= 1, not a number"),
    BAD("max_rows 10.0 is real", "{\"sql\":\"SELECT 1\",\"max_rows\":10.0}",
        "max_rows must be an integer >= 1, not a number"),
    BAD("max_rows string", "{\"sql\":\"SELECT 1\",\"max_rows\":\"10\"}",
        "max_rows must be an integer >= 1, not a string"),
    BAD("max_rows object", "{\"sql\":\"SELECT 1\",\"max_rows\":{}}",
        "max_rows must be an integer >= 1, not an object"),
    BAD("timeout_ms 0", "{\"sql\":\"SELECT 1\",\"timeout_ms\":0}",
        "timeout_ms must be an integer >= 1"),
    BAD("timeout_ms negative", "{\"sql\":\"SELECT 1\",\"timeout_ms\":-5}",
        "timeout_ms must be an integer >= 1"),
    BAD("timeout_ms real", "{\"sql\":\"SELECT 1\",\"timeout_ms\":2.5}",
        "timeout_ms must be an integer >= 1, not a number"),
    BAD("timeout_ms boolean", "{\"sql\":\"SELECT 1\",\"timeout_ms\":true}",
        "timeout_ms must be an integer >= 1, not a boolean"),

    /* operation length (bytes, not characters) */
    BAD("operation of 201 bytes",
        "{\"sql\":\"x\",\"operation\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "operation is longer than 200 bytes"),
    BAD("operation of 101 two-byte characters",
        "{\"sql\":\"x\",\"operation\":\""
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e"
        "9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e"
        "9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e"
        "9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e"
        "9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e"
        "9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e"
        "9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e"
        "9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}",
        "operation is longer than 200 bytes"),

    /* params */
    BAD("params array", "{\"sql\":\"SELECT 1\",\"params\":[1]}",
        "params must be an object, not an array"),
    BAD("params string", "{\"sql\":\"SELECT 1\",\"params\":\"x\"}",
        "params must be an object, not a string"),
    BAD("params integer", "{\"sql\":\"SELECT 1\",\"params\":1}",
        "params must be an object, not an integer"),
    BAD("param object", "{\"sql\":\"SELECT @a\",\"params\":{\"a\":{\"x\":1}}}",
        PARAM_VALUE_MSG("a", "an object")),
    BAD("param array", "{\"sql\":\"SELECT @a\",\"params\":{\"a\":[1]}}",
        PARAM_VALUE_MSG("a", "an array")),
    BAD("param name digit", "{\"sql\":\"SELECT 1\",\"params\":{\"1a\":1}}", PARAM_NAME_MSG("1a")),
    BAD("param name dash", "{\"sql\":\"SELECT 1\",\"params\":{\"a-b\":1}}", PARAM_NAME_MSG("a-b")),
    BAD("param name empty", "{\"sql\":\"SELECT 1\",\"params\":{\"\":1}}", PARAM_NAME_MSG("")),
    BAD("param name with @", "{\"sql\":\"SELECT 1\",\"params\":{\"@a\":1}}", PARAM_NAME_MSG("@a")),
    BAD("param name space", "{\"sql\":\"SELECT 1\",\"params\":{\"a b\":1}}", PARAM_NAME_MSG("a b")),
    BAD("param name non-ASCII", "{\"sql\":\"SELECT 1\",\"params\":{\"\\u00e9\":1}}",
        PARAM_NAME_MSG("\xc3\xa9")),
    BAD("param name of 129 bytes",
        "{\"sql\":\"x\",\"params\":{"
        "\"a1234567890123456789012345678901234567890123456789012345678901"
        "2345678901234567890123456789012345678901234567890123456789012345678\":1}}",
        PARAM_NAME_MSG("a123456789012345678901234567890123456789012345678901234567890123")),
    BAD("the first bad parameter is reported (value)",
        "{\"sql\":\"x\",\"params\":{\"ok\":1,\"a\":[1],\"1b\":2,\"\":3}}",
        PARAM_VALUE_MSG("a", "an array")),
    BAD("the first bad parameter is reported (name)",
        "{\"sql\":\"x\",\"params\":{\"1b\":[1],\"a\":{}}}", PARAM_NAME_MSG("1b")),

    /* the order of checks when several fields are wrong */
    BAD("syntax before anything", "{\"sql\":1,\"params\":[],\"x\":[}",
        SYN(1, 27, "expected a value, found '}'")),
    BAD("sql before params", "{\"params\":[],\"sql\":1}", "sql must be a string, not an integer"),
    BAD("database before operation", "{\"sql\":\"x\",\"operation\":1,\"database\":1}",
        "database must be a string, not an integer"),
    BAD("rows_as type before max_rows", "{\"sql\":\"x\",\"max_rows\":0,\"rows_as\":1}",
        "rows_as must be a string, not an integer"),
    BAD("max_rows before timeout_ms", "{\"sql\":\"x\",\"timeout_ms\":0,\"max_rows\":0}",
        "max_rows must be an integer >= 1"),
    BAD("timeout_ms before the operation length",
        "{\"sql\":\"x\",\"timeout_ms\":0,\"operation\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "timeout_ms must be an integer >= 1"),
    BAD("rows_as value before params", "{\"sql\":\"x\",\"params\":[],\"rows_as\":\"rows\"}",
        "rows_as must be \"objects\" or \"arrays\""),
    BAD("params type before anything in it", "{\"sql\":\"x\",\"params\":\"a\"}",
        "params must be an object, not a string"),
};

START_TEST(rejected)
{
    const bad_case *c = &BAD_CASES[_i];
    qreq q;
    sg_err err;
    sg_err_clear(&err);
    ck_assert_msg(qreq_parse(&q, c->body, c->len, &err) == -1, "%s: accepted", c->what);
    ck_assert_msg(err.code == SG_BAD_REQUEST, "%s: code %s", c->what, sg_code_name(err.code));
    ck_assert_msg(strcmp(err.message, c->message) == 0, "%s:\n  got  %s\n  want %s", c->what,
                  err.message, c->message);
    ck_assert_msg(q.strings == NULL && q.sql == NULL && q.database == NULL && q.operation == NULL &&
                      q.params == NULL && q.n_params == 0 && q.max_rows == 0 && q.timeout_ms == 0 &&
                      !q.rows_as_arrays,
                  "%s: a failed parse left state behind", c->what);
    qreq_free(&q);
}
END_TEST

/* --- Accepted bodies ------------------------------------------------------------ */

typedef struct param_want {
    const char *name;
    sg_vtype type;
    int64_t i;
    double f;
    const char *text; /* SG_V_TEXT; length in text_len */
    size_t text_len;
    bool b;
} param_want;

typedef struct good_case {
    const char *what;
    const char *body;
    size_t len;
    const char *sql;
    const char *database; /* NULL: absent */
    const char *operation;
    int64_t max_rows, timeout_ms;
    bool arrays;
    size_t n_params;
    param_want p[10];
} good_case;

#define GOOD(what_, body_, ...)                                                                    \
    {                                                                                              \
        .what = what_, .body = body_, .len = sizeof body_ - 1, __VA_ARGS__                         \
    }
#define P_INT(n, v)                                                                                \
    {                                                                                              \
        .name = n, .type = SG_V_INT, .i = v                                                        \
    }
#define P_FLOAT(n, v)                                                                              \
    {                                                                                              \
        .name = n, .type = SG_V_FLOAT, .f = v                                                      \
    }
#define P_TEXT(n, v)                                                                               \
    {                                                                                              \
        .name = n, .type = SG_V_TEXT, .text = v, .text_len = sizeof v - 1                          \
    }
#define P_BOOL(n, v)                                                                               \
    {                                                                                              \
        .name = n, .type = SG_V_BOOL, .b = v                                                       \
    }
#define P_NULL(n)                                                                                  \
    {                                                                                              \
        .name = n, .type = SG_V_NULL                                                               \
    }

static const good_case GOOD_CASES[] = {
    GOOD("minimal", "{\"sql\":\"SELECT 1\"}", .sql = "SELECT 1"),
    GOOD("the contract's example",
         "{\"sql\": \"SELECT id, name FROM users WHERE id = @id\", \"params\": {\"id\": 42},\n"
         " \"max_rows\": 100, \"timeout_ms\": 2000, \"operation\": \"users.by_id\", "
         "\"rows_as\": \"objects\"}",
         .sql = "SELECT id, name FROM users WHERE id = @id", .operation = "users.by_id",
         .max_rows = 100, .timeout_ms = 2000, .n_params = 1, .p = {P_INT("id", 42)}),
    GOOD("every field",
         "{\"sql\":\"SELECT 1\",\"database\":\"core\",\"operation\":\"op\",\"max_rows\":10,"
         "\"timeout_ms\":500,\"rows_as\":\"arrays\",\"params\":{}}",
         .sql = "SELECT 1", .database = "core", .operation = "op", .max_rows = 10,
         .timeout_ms = 500, .arrays = true),
    GOOD("null optional fields",
         "{\"sql\":\"SELECT 1\",\"database\":null,\"operation\":null,\"max_rows\":null,"
         "\"timeout_ms\":null,\"rows_as\":null,\"params\":null}",
         .sql = "SELECT 1"),
    GOOD("whitespace everywhere",
         " \t\r\n{ \t\r\n\"sql\" \t\r\n: \t\r\n\"SELECT 1\" \t\r\n, \"params\" : { \"a\" : 1 } , "
         "\"x\" : [ ] \t\r\n} \t\r\n",
         .sql = "SELECT 1", .n_params = 1, .p = {P_INT("a", 1)}),
    GOOD("largest limits", "{\"sql\":\"x\",\"max_rows\":9223372036854775807,\"timeout_ms\":1}",
         .sql = "x", .max_rows = INT64_MAX, .timeout_ms = 1),
    GOOD("unknown members of every shape",
         "{\"x\":{\"a\":[1,-2.5e-3,true,false,null,\"s\",{\"b\":{}},[]]},\"sql\":\"SELECT 1\","
         "\"y\":[],\"z\":\"\\\\u0000\",\"Sql\":1,\"SQL\":2}",
         .sql = "SELECT 1"),
    GOOD("a known key inside an unknown member is not the member",
         "{\"sql\":\"x\",\"o\":{\"sql\":1,\"params\":[],\"max_rows\":\"no\"}}", .sql = "x"),
    GOOD("the same key in sibling and nested objects",
         "{\"sql\":\"x\",\"a\":{\"k\":1,\"a\":{\"k\":2,\"a\":3}},\"b\":[{\"k\":1},{\"k\":2}]}",
         .sql = "x"),
    GOOD("a key spelled with escapes is the member",
         "{\"s\\u0071l\":\"SELECT 1\",\"\\u0070arams\":{\"a\":1}}", .sql = "SELECT 1",
         .n_params = 1, .p = {P_INT("a", 1)}),
    GOOD("escapes in sql",
         "{\"sql\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t \\u00e9\\u20AC\\ud83d\\ude00\\uDBFF\\uDFFF\"}",
         .sql = "\"\\/\b\f\n\r\t \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"),
    GOOD("raw UTF-8 in sql",
         "{\"sql\":\"SELECT '\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\x7f'\"}",
         .sql = "SELECT '\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\x7f'"),
    GOOD("an escaped backslash before u0000 is text", "{\"sql\":\"a\\\\u0000b\"}",
         .sql = "a\\u0000b"),
    GOOD("integers",
         "{\"sql\":\"x\",\"params\":{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
         "\"zero\":0,\"neg_zero\":-0,\"big53\":9007199254740993,\"neg\":-42}}",
         .sql = "x", .n_params = 6,
         .p = {P_INT("max", INT64_MAX), P_INT("min", INT64_MIN), P_INT("zero", 0),
               P_INT("neg_zero", 0), P_INT("big53", 9007199254740993LL), P_INT("neg", -42)}),
    GOOD("reals",
         "{\"sql\":\"x\",\"params\":{\"exp\":1e2,\"Exp\":1E+2,\"frac\":0.1,\"neg_zero\":-0.0,"
         "\"max\":1.7976931348623157e308,\"denormal\":4.9e-324,\"underflow\":1e-400,"
         "\"ten\":10.0,\"small\":-2.5e-3}}",
         .sql = "x", .n_params = 9,
         .p = {P_FLOAT("exp", 100.0), P_FLOAT("Exp", 100.0), P_FLOAT("frac", 0.1),
               P_FLOAT("neg_zero", -0.0), P_FLOAT("max", 1.7976931348623157e308),
               P_FLOAT("denormal", 4.9e-324), P_FLOAT("underflow", 0.0), P_FLOAT("ten", 10.0),
               P_FLOAT("small", -2.5e-3)}),
    GOOD("every parameter kind, in body order",
         "{\"sql\":\"SELECT @z, @a, @m\",\"params\":{\"z\":\"text\",\"a\":true,\"m\":false,"
         "\"n\":null,\"e\":\"\",\"u\":\"\\u00e9\\n\",\"_x9\":1.5}}",
         .sql = "SELECT @z, @a, @m", .n_params = 7,
         .p = {P_TEXT("z", "text"), P_BOOL("a", true), P_BOOL("m", false), P_NULL("n"),
               P_TEXT("e", ""), P_TEXT("u", "\xc3\xa9\n"), P_FLOAT("_x9", 1.5)}),
    GOOD(
        "parameter name of 128 bytes",
        "{\"sql\":\"x\",\"params\":{\"a123456789012345678901234567890123456789012345678901234567890"
        "1234567890123456789012345678901234567890123456789012345678901234567\":1}}",
        .sql = "x", .n_params = 1,
        .p = {P_INT("a1234567890123456789012345678901234567890123456789012345678901234567890123"
                    "456789012345678901234567890123456789012345678901234567",
                    1)}),
    GOOD("operation of 200 bytes",
         "{\"sql\":\"x\",\"operation\":"
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         .sql = "x",
         .operation =
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    GOOD("rows_as objects", "{\"sql\":\"x\",\"rows_as\":\"objects\"}", .sql = "x"),
    GOOD("many keys, no duplicate (the hash table)",
         "{\"sql\":\"x\",\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,\"k7\":1,\"k8\":1,"
         "\"k9\":1,\"k10\":1,\"k11\":1,\"k12\":1,\"k13\":1,\"k14\":1,\"k15\":1,\"k16\":1,\"k17\":1,"
         "\"o\":{\"k1\":1,\"k2\":2},\"params\":{\"k1\":1,\"k2\":2}}",
         .sql = "x", .n_params = 2, .p = {P_INT("k1", 1), P_INT("k2", 2)}),
};

static void check_param(const char *what, size_t i, const sg_param *got, const param_want *want)
{
    ck_assert_msg(strcmp(got->name, want->name) == 0, "%s: parameter %zu is %s, want %s", what, i,
                  got->name, want->name);
    ck_assert_msg(got->value.type == want->type, "%s: %s has type %d, want %d", what, want->name,
                  (int)got->value.type, (int)want->type);
    switch (want->type) {
    case SG_V_INT:
        ck_assert_msg(got->value.u.i == want->i, "%s: %s = %lld", what, want->name,
                      (long long)got->value.u.i);
        break;
    case SG_V_FLOAT:
        ck_assert_msg(memcmp(&got->value.u.f, &want->f, sizeof want->f) == 0,
                      "%s: %s = %.17g, want %.17g", what, want->name, got->value.u.f, want->f);
        break;
    case SG_V_TEXT:
        ck_assert_msg(got->value.u.s.len == want->text_len &&
                          memcmp(got->value.u.s.ptr, want->text, want->text_len) == 0 &&
                          got->value.u.s.ptr[want->text_len] == '\0',
                      "%s: %s = \"%.*s\"", what, want->name, (int)got->value.u.s.len,
                      got->value.u.s.ptr);
        break;
    case SG_V_BOOL:
        ck_assert_msg(got->value.u.b == want->b, "%s: %s", what, want->name);
        break;
    default:
        break;
    }
}

static void check_string(const char *what, const char *field, const char *got, const char *want)
{
    if (want == NULL)
        ck_assert_msg(got == NULL, "%s: %s is \"%s\", want absent", what, field, got);
    else
        ck_assert_msg(got != NULL && strcmp(got, want) == 0, "%s: %s is \"%s\", want \"%s\"", what,
                      field, got ? got : "(absent)", want);
}

START_TEST(accepted)
{
    const good_case *c = &GOOD_CASES[_i];
    /* the body in a buffer of its own length, without a terminator: a read
     * past len is a valgrind error */
    char *body = malloc(c->len ? c->len : 1);
    ck_assert_ptr_nonnull(body);
    memcpy(body, c->body, c->len);
    qreq q;
    sg_err err;
    sg_err_clear(&err);
    int rc = qreq_parse(&q, body, c->len, &err);
    free(body); /* nothing may point into the body */
    ck_assert_msg(rc == 0, "%s: %s", c->what, err.message);
    check_string(c->what, "sql", q.sql, c->sql);
    check_string(c->what, "database", q.database, c->database);
    check_string(c->what, "operation", q.operation, c->operation);
    ck_assert_msg(q.max_rows == c->max_rows, "%s: max_rows %lld", c->what, (long long)q.max_rows);
    ck_assert_msg(q.timeout_ms == c->timeout_ms, "%s: timeout_ms %lld", c->what,
                  (long long)q.timeout_ms);
    ck_assert_msg(q.rows_as_arrays == c->arrays, "%s: rows_as_arrays", c->what);
    ck_assert_msg(q.n_params == c->n_params, "%s: %zu parameters", c->what, q.n_params);
    if (c->n_params == 0)
        ck_assert_msg(q.params == NULL, "%s: an empty parameter array", c->what);
    for (size_t i = 0; i < q.n_params; i++)
        check_param(c->what, i, &q.params[i], &c->p[i]);
    qreq_free(&q);
    ck_assert(q.strings == NULL && q.params == NULL && q.sql == NULL);
    qreq_free(&q); /* a freed qreq is a zeroed one */
}
END_TEST

/* --- Built bodies: caps and sizes ------------------------------------------------- */

/* A growable body for the generated cases. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void put(text *t, const char *s, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = 2 * (t->len + n) + 64;
        t->p = realloc(t->p, t->cap);
        ck_assert_ptr_nonnull(t->p);
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void puts_(text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void repeat(text *t, const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++)
        puts_(t, s);
}

static int parse_text(const text *t, qreq *q, sg_err *err)
{
    sg_err_clear(err);
    return qreq_parse(q, t->p, t->len, err);
}

/* {"sql":"x","x": open... middle close... }: depth levels in all. */
static text nested(size_t depth, const char *open, const char *middle, const char *close)
{
    text t = {0};
    puts_(&t, "{\"sql\":\"x\",\"x\":");
    repeat(&t, open, depth - 1);
    puts_(&t, middle);
    repeat(&t, close, depth - 1);
    puts_(&t, "}");
    return t;
}

START_TEST(depth_limit)
{
    qreq q;
    sg_err err;
    text t = nested(QREQ_MAX_DEPTH, "[", "", "]");
    ck_assert_msg(parse_text(&t, &q, &err) == 0, "%s", err.message);
    qreq_free(&q);
    free(t.p);

    t = nested(QREQ_MAX_DEPTH, "{\"a\":", "1", "}");
    ck_assert_msg(parse_text(&t, &q, &err) == 0, "%s", err.message);
    qreq_free(&q);
    free(t.p);

    t = nested(QREQ_MAX_DEPTH + 1, "[", "", "]");
    ck_assert_int_eq(parse_text(&t, &q, &err), -1);
    ck_assert_str_eq(err.message, "the body nests arrays and objects more than 64 levels deep "
                                  "(line 1, column 79)");
    free(t.p);

    /* 100000 levels never closed, and a deep body that would also be
     * invalid later: the depth is reported, without recursion */
    t = (text){0};
    repeat(&t, "[", 100000);
    ck_assert_int_eq(parse_text(&t, &q, &err), -1);
    ck_assert_str_eq(err.message, "the body nests arrays and objects more than 64 levels deep "
                                  "(line 1, column 65)");
    free(t.p);
    t = (text){0};
    repeat(&t, "{\"a\":", 100000);
    ck_assert_int_eq(parse_text(&t, &q, &err), -1);
    ck_assert_str_eq(err.message, "the body nests arrays and objects more than 64 levels deep "
                                  "(line 1, column 321)");
    free(t.p);
}
END_TEST

START_TEST(parameter_count)
{
    qreq q;
    sg_err err;
    for (size_t n = QREQ_MAX_PARAMS; n <= QREQ_MAX_PARAMS + 1; n++) {
        text t = {0};
        puts_(&t, "{\"sql\":\"x\",\"params\":{");
        for (size_t i = 0; i < n; i++) {
            char item[64];
            snprintf(item, sizeof item, "%s\"p%zu\":%zu", i ? "," : "", i, i);
            puts_(&t, item);
        }
        puts_(&t, "}}");
        int rc = parse_text(&t, &q, &err);
        if (n == QREQ_MAX_PARAMS) {
            ck_assert_msg(rc == 0, "%s", err.message);
            ck_assert_uint_eq(q.n_params, QREQ_MAX_PARAMS);
            for (size_t i = 0; i < n; i++) {
                char name[16];
                snprintf(name, sizeof name, "p%zu", i);
                ck_assert_str_eq(q.params[i].name, name);
                ck_assert_int_eq(q.params[i].value.type, SG_V_INT);
                ck_assert_int_eq(q.params[i].value.u.i, (int64_t)i);
            }
            qreq_free(&q);
        } else {
            ck_assert_int_eq(rc, -1);
            ck_assert_str_eq(err.message, "params has 2101 entries; at most 2100 are allowed");
        }
        free(t.p);
    }

    /* the count wins over a bad entry, even one past the cap; a syntax error
     * past the cap wins over the count */
    text t = {0};
    puts_(&t, "{\"sql\":\"x\",\"params\":{\"1bad\":[]");
    for (size_t i = 0; i < 3000; i++) {
        char item[64];
        snprintf(item, sizeof item, ",\"p%zu\":\"v\"", i);
        puts_(&t, item);
    }
    puts_(&t, ",\"x\":{}}}");
    ck_assert_int_eq(parse_text(&t, &q, &err), -1);
    ck_assert_str_eq(err.message, "params has 3002 entries; at most 2100 are allowed");
    t.len -= 9;
    puts_(&t, ",\"p2999\":1}}");
    ck_assert_int_eq(parse_text(&t, &q, &err), -1);
    ck_assert_msg(strstr(err.message, "duplicate key \"p2999\"") != NULL, "%s", err.message);
    free(t.p);
}
END_TEST

START_TEST(many_keys)
{
    /* 200000 keys in one ignored object and 1000 small objects with the same
     * keys: the hash table grows; then a duplicate at the very end */
    qreq q;
    sg_err err;
    text t = {0};
    puts_(&t, "{\"sql\":\"x\",\"big\":{");
    for (size_t i = 0; i < 200000; i++) {
        char item[48];
        snprintf(item, sizeof item, "%s\"key%zu\":%zu", i ? "," : "", i, i);
        puts_(&t, item);
    }
    puts_(&t, "},\"small\":[");
    repeat(&t, "{\"key1\":1,\"key2\":2,\"sql\":3},", 999);
    puts_(&t, "{\"key1\":1,\"key2\":2,\"sql\":3}]}");
    ck_assert_msg(parse_text(&t, &q, &err) == 0, "%s", err.message);
    ck_assert_str_eq(q.sql, "x");
    qreq_free(&q);

    t.len -= 3;
    puts_(&t, ",\"key2\":0}]}");
    ck_assert_int_eq(parse_text(&t, &q, &err), -1);
    ck_assert_msg(strstr(err.message, "duplicate key \"key2\"") != NULL, "%s", err.message);
    free(t.p);
}
END_TEST

START_TEST(worst_case_strings)
{
    /* strings that shrink the most and the least when unescaped, and long
     * numbers (strtod's copy): all must fit the one buffer (valgrind) */
    qreq q;
    sg_err err;
    text t = {0};
    puts_(&t, "{\"sql\":\"");
    repeat(&t, "\\ud83d\\ude00", 5000);
    puts_(&t, "\",\"params\":{\"a\":\"");
    repeat(&t, "\xf0\x9f\x98\x80", 5000);
    puts_(&t, "\",\"b\":0.");
    repeat(&t, "0", 100000);
    puts_(&t, "1e100100,\"c\":-");
    repeat(&t, "1", 100);
    puts_(&t, ".5}}");
    ck_assert_msg(parse_text(&t, &q, &err) == 0, "%s", err.message);
    ck_assert_uint_eq(strlen(q.sql), 20000);
    ck_assert(memcmp(q.sql, "\xf0\x9f\x98\x80", 4) == 0);
    ck_assert_uint_eq(q.n_params, 3);
    ck_assert_uint_eq(q.params[0].value.u.s.len, 20000);
    ck_assert_int_eq(q.params[1].value.type, SG_V_FLOAT);
    ck_assert(q.params[1].value.u.f == 1e99);
    ck_assert(q.params[2].value.u.f < -1e99);
    qreq_free(&q);
    free(t.p);

    /* a body that is one long string of escapes, unclosed */
    t = (text){0};
    puts_(&t, "{\"sql\":\"");
    repeat(&t, "\\n", 50000);
    ck_assert_int_eq(parse_text(&t, &q, &err), -1);
    ck_assert_str_eq(err.message, "the body is not valid JSON (line 1, column 100009): a string "
                                  "is not closed before the end of the body");
    free(t.p);
}
END_TEST

START_TEST(reals_from_long_text)
{
    /* a real's digits beyond double precision round as strtod rounds them */
    static const char body[] =
        "{\"sql\":\"x\",\"params\":{\"a\":0.1000000000000000055511151231257827,"
        "\"b\":123456789012345678901234567890,\"c\":1.5e308}}";
    qreq q;
    sg_err err;
    sg_err_clear(&err);
    ck_assert_int_eq(qreq_parse(&q, body, sizeof body - 1, &err), -1);
    ck_assert_str_eq(err.message,
                     "the body is not valid JSON (line 1, column 67): the integer does not fit "
                     "in 64 bits");
    static const char body2[] =
        "{\"sql\":\"x\",\"params\":{\"a\":0.1000000000000000055511151231257827,"
        "\"b\":123456789012345678901234567890.0,\"c\":1.5e308}}";
    ck_assert_msg(qreq_parse(&q, body2, sizeof body2 - 1, &err) == 0, "%s", err.message);
    ck_assert(q.params[0].value.u.f == 0.1);
    ck_assert(q.params[1].value.u.f == 123456789012345678901234567890.0);
    ck_assert(q.params[2].value.u.f == 1.5e308);
    ck_assert(!signbit(q.params[1].value.u.f));
    qreq_free(&q);
}
END_TEST

START_TEST(free_zeroed)
{
    qreq q;
    memset(&q, 0, sizeof q);
    qreq_free(&q);
    ck_assert_ptr_null(q.strings);
}
END_TEST

static Suite *qreq_suite(void)
{
    Suite *s = suite_create("qreq");
    TCase *tc = tcase_create("cases");
    tcase_add_loop_test(tc, rejected, 0, (int)(sizeof BAD_CASES / sizeof BAD_CASES[0]));
    tcase_add_loop_test(tc, accepted, 0, (int)(sizeof GOOD_CASES / sizeof GOOD_CASES[0]));
    suite_add_tcase(s, tc);
    TCase *caps = tcase_create("caps");
    tcase_set_timeout(caps, 120);
    tcase_add_test(caps, depth_limit);
    tcase_add_test(caps, parameter_count);
    tcase_add_test(caps, many_keys);
    tcase_add_test(caps, worst_case_strings);
    tcase_add_test(caps, reals_from_long_text);
    tcase_add_test(caps, free_zeroed);
    suite_add_tcase(s, caps);
    return s;
}

int main(void)
{
    return check_run(qreq_suite());
}
