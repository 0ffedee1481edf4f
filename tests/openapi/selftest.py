#!/usr/bin/env python3
"""Self-test of validate.py: the lint must flag broken documents and the
validator must flag responses that break the document, while the real
document and well-formed responses pass. Without this, a validator that
accepts everything would make the openapi test pass for nothing.

Usage: selftest.py VALIDATE_PY OPENAPI_JSON. Ends with "N passed, N failed".
"""
import copy
import importlib.util
import json
import sys

spec = importlib.util.spec_from_file_location("validate", sys.argv[1])
validate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(validate)

with open(sys.argv[2], encoding="utf-8") as f:
    DOC = json.load(f)

passed = failed = 0


def expect(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}")


# --- lint -------------------------------------------------------------------------

expect(validate.Lint(DOC).run() == [], "the real document lints clean")


def op(doc, path, method="get"):
    return doc["paths"][path][method]


def mutation(name, fn):
    doc = copy.deepcopy(DOC)
    fn(doc)
    problems = validate.Lint(doc).run()
    expect(problems, f"lint catches: {name}")


mutation("openapi 3.0", lambda d: d.__setitem__("openapi", "3.0.3"))
mutation("no info.version", lambda d: d["info"].pop("version"))
mutation("no operationId", lambda d: op(d, "/health").pop("operationId"))
mutation("duplicate operationId",
         lambda d: op(d, "/health/live").__setitem__("operationId", "getHealth"))
mutation("no responses", lambda d: op(d, "/health").__setitem__("responses", {}))
mutation("bad status key",
         lambda d: op(d, "/health")["responses"].__setitem__("2000", {"description": "x"}))
mutation("dangling $ref", lambda d: op(d, "/health")["responses"]["200"]["content"][
    "application/json"]["schema"].__setitem__("$ref", "#/components/schemas/Nope"))
mutation("remote $ref", lambda d: op(d, "/health")["responses"]["200"]["content"][
    "application/json"]["schema"].__setitem__("$ref", "https://example.com/s.json"))
mutation("no X-Request-Id", lambda d: op(d, "/health")["responses"]["200"].pop("headers"))
mutation("503 without Retry-After",
         lambda d: d["components"]["responses"]["ServiceUnavailable"]["headers"].pop(
             "Retry-After"))
mutation("error response not Error",
         lambda d: d["components"]["responses"]["BadRequest"]["content"][
             "application/json"].__setitem__("schema", {"type": "object"}))
mutation("invalid schema",
         lambda d: d["components"]["schemas"].__setitem__("Broken", {"type": "nonsense"}))
mutation("path parameter not declared",
         lambda d: op(d, "/health/{name}").__setitem__("parameters", []))
mutation("undeclared tag", lambda d: op(d, "/health").__setitem__("tags", ["nope"]))
mutation("unknown security scheme",
         lambda d: op(d, "/v1/databases").__setitem__("security", [{"nope": []}]))
mutation("response without description",
         lambda d: op(d, "/health")["responses"]["200"].pop("description"))
mutation("unknown operation field", lambda d: op(d, "/health").__setitem__("bogus", 1))
mutation("parameter declared twice", lambda d: op(d, "/health/{name}")["parameters"].append(
    {"$ref": "#/components/parameters/DatabaseName"}))

# --- validation ---------------------------------------------------------------------

RID = "a1b2c3d4e5f60718"


def ex(method, path, status, body=None, headers=None, ctype="application/json"):
    h = [["X-Request-Id", RID]]
    if ctype is not None and body is not None:
        h.append(["Content-Type", ctype])
    h += headers or []
    text = "" if body is None else (body if isinstance(body, str) else json.dumps(body))
    e = {"method": method, "path": path, "status": status, "curl_code": 0, "headers": h,
         "body_len": len(text.encode())}
    if body is not None:
        e["body"] = text
    return e


def err(code, rid=RID):
    return {"error": {"code": code, "message": "m", "request_id": rid}}


POOL = {"max": 10, "open": 1, "in_use": 0, "idle": 1, "waiting": 0}
ENTRY = {"name": "core", "driver": "sqlite", "state": "ready", "critical": True,
         "read_only": False, "pool": POOL}
HEALTH = {"healthy": True, "critical": True, "state": "ready", "latency_ms": 0.5,
          "checked_at": "2026-01-29T10:00:00.123Z", "error": None, "pool": POOL}
QUERY = {"database": "core", "results": [{"columns": [{"name": "a", "type": "integer"}],
                                          "rows": [{"a": 1}], "row_count": 1,
                                          "truncated": False}],
         "rows_affected": 0, "elapsed_ms": 0.2}

GOOD = [
    ("live", ex("GET", "/health/live", 200, {"status": "live"})),
    ("live with a query string", ex("GET", "/health/live?x=1", 200, {"status": "live"})),
    ("HEAD live", ex("HEAD", "/health/live", 200)),
    ("one database", ex("GET", "/v1/databases/core", 200, ENTRY)),
    ("health of one", ex("GET", "/health/core", 200, HEALTH)),
    ("query", ex("POST", "/v1/databases/core/query", 200, QUERY)),
    ("sql error", ex("POST", "/v1/query", 400, {"error": {
        "code": "SQL_ERROR", "message": "m", "request_id": RID,
        "sql": {"number": 1, "severity": 16, "state": 1, "line": 1}}})),
    ("pool exhausted", ex("POST", "/v1/databases/core/query", 503, err("POOL_EXHAUSTED"),
                          [["Retry-After", "1"]])),
    ("unknown route", ex("GET", "/nope", 404, err("NOT_FOUND"))),
    ("wrong method", ex("DELETE", "/health", 405, err("METHOD_NOT_ALLOWED"),
                        [["Allow", "GET, HEAD"]])),
    ("metrics", ex("GET", "/metrics", 200, "# HELP x y\n",
                   ctype="text/plain; version=0.0.4; charset=utf-8")),
]
BAD = [
    ("undeclared status", ex("GET", "/health/live", 418, {"status": "live"})),
    ("no X-Request-Id", dict(ex("GET", "/health/live", 200, {"status": "live"}),
                             headers=[["Content-Type", "application/json"]])),
    ("bad X-Request-Id", ex("GET", "/health/live", 200, {"status": "live"})
     | {"headers": [["X-Request-Id", "has space"], ["Content-Type", "application/json"]]}),
    ("body against schema", ex("GET", "/health/live", 200, {"status": "dead"})),
    ("body not JSON", ex("GET", "/health/live", 200, "{not json")),
    ("undocumented property", ex("GET", "/v1/databases/core", 200, dict(ENTRY, secret="x"))),
    ("undocumented nested property",
     ex("GET", "/v1/databases/core", 200, dict(ENTRY, pool=dict(POOL, extra=1)))),
    ("date-time format", ex("GET", "/health/core", 200, dict(HEALTH, checked_at="yesterday"))),
    ("code with the wrong status", ex("GET", "/v1/databases/nope", 404, err("BAD_REQUEST"))),
    ("code not allowed for the response",
     ex("GET", "/v1/databases/nope", 404, err("NOT_FOUND"))),
    ("request id mismatch", ex("GET", "/v1/databases/nope", 404,
                               err("UNKNOWN_DATABASE", rid="other"))),
    ("503 without Retry-After", ex("POST", "/v1/databases/core/query", 503,
                                   err("POOL_EXHAUSTED"))),
    ("Retry-After not an integer", ex("POST", "/v1/databases/core/query", 503,
                                      err("POOL_EXHAUSTED"), [["Retry-After", "soon"]])),
    ("unknown route answered 200", ex("GET", "/nope", 200, {"status": "live"})),
    ("wrong Allow", ex("DELETE", "/health", 405, err("METHOD_NOT_ALLOWED"),
                       [["Allow", "POST"]])),
    ("undeclared Content-Type", ex("GET", "/health/live", 200, {"status": "live"},
                                   ctype="text/html")),
    ("HEAD with a body", ex("HEAD", "/health/live", 200, {"status": "live"})),
    ("query result row_count negative",
     ex("POST", "/v1/query", 200, dict(QUERY, results=[dict(QUERY["results"][0],
                                                            row_count=-1)]))),
]
v = validate.Validator(DOC)
for name, e in GOOD:
    problems = v.check(e)
    expect(problems == [], f"accepts: {name} {problems}")
for name, e in BAD:
    expect(v.check(e) != [], f"rejects: {name}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
