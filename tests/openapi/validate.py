#!/usr/bin/env python3
"""Lints sqlgate's OpenAPI 3.1 document and validates recorded HTTP exchanges
against it.

Usage: validate.py OPENAPI_JSON [RECORD_JSONL]

Lint (always): the structure OpenAPI 3.1 requires (version, info, paths,
operations, responses, parameters, headers, security, components), every
$ref resolving inside the document, every schema a valid JSON Schema 2020-12
schema, and the project's rules: every operation has an operationId, every
response declares X-Request-Id, every 503 declares Retry-After, every 4xx/5xx
response carries the Error schema.

Validation (with a record written by the integration harness, one JSON object
per line: method, path, status, headers, body): each exchange is matched to
the document's operation by method and path template (HEAD answers as GET).
Its status must be declared for that operation, its required headers present
and valid, its Content-Type declared, and its JSON body valid against the
declared schema (Draft 2020-12, the dialect of OpenAPI 3.1). Objects may not
carry properties that the document does not describe. A path that matches no
template must answer 404 NOT_FOUND (components.responses.NotFound), a known
path with an undeclared method 405 METHOD_NOT_ALLOWED with an Allow header
(components.responses.MethodNotAllowed); a request refused before routing may
also get the ServiceUnavailable or Internal responses. Error bodies must carry
the status of their code and the request id of the X-Request-Id header.

Ends with "N passed, N failed" (N counts exchanges; a lint failure counts as
one more failure) and exits 1 on any failure.
"""
import copy
import json
import re
import sys
from urllib.parse import unquote, urlsplit

import jsonschema

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PATH_ITEM_KEYS = set(HTTP_METHODS) | {"summary", "description", "servers", "parameters", "$ref"}
OPERATION_KEYS = {
    "tags", "summary", "description", "externalDocs", "operationId", "parameters",
    "requestBody", "responses", "callbacks", "deprecated", "security", "servers",
}
COMPONENT_KINDS = {
    "schemas", "responses", "parameters", "examples", "requestBodies", "headers",
    "securitySchemes", "links", "callbacks", "pathItems",
}
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9._-]+$")
STATUS_KEY = re.compile(r"^(default|[1-5]XX|[1-5][0-9][0-9])$")
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

# docs/errors.md: the HTTP status of every error code.
CODE_STATUS = {
    "BAD_REQUEST": 400, "UNAUTHORIZED": 401, "UNKNOWN_DATABASE": 404, "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405, "PAYLOAD_TOO_LARGE": 413, "UNSUPPORTED_MEDIA_TYPE": 415,
    "SQL_ERROR": 400, "POOL_EXHAUSTED": 503, "DB_UNAVAILABLE": 503, "DB_PAUSED": 503,
    "OVERLOADED": 503, "QUERY_TIMEOUT": 504, "SHUTTING_DOWN": 503, "INTERNAL": 500,
}
ERROR_REF = "#/components/schemas/Error"


def pointer_escape(part):
    return str(part).replace("~", "~0").replace("/", "~1")


def resolve_pointer(doc, ref):
    """The value a local $ref ("#/a/b") points to; raises KeyError."""
    if not ref.startswith("#"):
        raise KeyError(f"{ref}: only local references are allowed")
    node = doc
    if ref in ("#", "#/"):
        return node
    if not ref.startswith("#/"):
        raise KeyError(f"{ref}: not a JSON pointer")
    for raw in ref[2:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"{ref}: '{part}' not found")
    return node


def deref(doc, node):
    """Follows $ref chains of a (non-schema) OpenAPI object."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise KeyError(f"{ref}: reference cycle")
        seen.add(ref)
        node = resolve_pointer(doc, ref)
    return node


def deref_with_pointer(doc, node, pointer):
    """deref, also returning the JSON pointer of the object reached."""
    while isinstance(node, dict) and "$ref" in node:
        pointer = node["$ref"]
        node = resolve_pointer(doc, pointer)
    return node, pointer


# --- Lint ----------------------------------------------------------------------


class Lint:
    def __init__(self, doc):
        self.doc = doc
        self.problems = []

    def bad(self, where, what):
        self.problems.append(f"{where}: {what}")

    def run(self):
        doc = self.doc
        if not isinstance(doc, dict):
            self.bad("document", "not a JSON object")
            return self.problems
        allowed = {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks",
                   "components", "security", "tags", "externalDocs"}
        for k in doc:
            if k not in allowed and not k.startswith("x-"):
                self.bad("document", f"unknown top-level field '{k}'")
        if not re.fullmatch(r"3\.1\.\d+", str(doc.get("openapi", ""))):
            self.bad("openapi", f"'{doc.get('openapi')}' is not 3.1.x")
        info = doc.get("info")
        if not isinstance(info, dict):
            self.bad("info", "missing")
        else:
            for k in ("title", "version"):
                if not isinstance(info.get(k), str) or not info.get(k):
                    self.bad("info", f"'{k}' missing or not a string")
            lic = info.get("license")
            if lic is not None and (not isinstance(lic, dict) or "name" not in lic
                                    or ("identifier" in lic and "url" in lic)):
                self.bad("info.license", "needs a name, and identifier or url (not both)")
        if not isinstance(doc.get("paths"), dict) or not doc["paths"]:
            self.bad("paths", "missing or empty")
        self.check_refs(doc, "#")
        self.check_components()
        self.check_tags_and_security()
        op_ids = {}
        for path, item in (doc.get("paths") or {}).items():
            self.check_path_item(path, item, op_ids)
        return self.problems

    def check_refs(self, node, where):
        """Every $ref anywhere resolves inside the document."""
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    resolve_pointer(self.doc, ref)
                except (KeyError, ValueError, IndexError) as e:
                    self.bad(where, f"$ref does not resolve: {e}")
            for k, v in node.items():
                self.check_refs(v, f"{where}/{pointer_escape(k)}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.check_refs(v, f"{where}/{i}")

    def check_schema(self, schema, where):
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as e:
            self.bad(where, f"not a valid JSON Schema 2020-12: {e.message}")

    def check_components(self):
        comps = self.doc.get("components", {})
        if not isinstance(comps, dict):
            self.bad("components", "not an object")
            return
        for kind, entries in comps.items():
            if kind.startswith("x-"):
                continue
            if kind not in COMPONENT_KINDS:
                self.bad("components", f"unknown kind '{kind}'")
                continue
            for name in entries:
                if not COMPONENT_KEY.match(name):
                    self.bad(f"components.{kind}", f"bad key '{name}'")
        for name, schema in comps.get("schemas", {}).items():
            self.check_schema(schema, f"components.schemas.{name}")
        for name, p in comps.get("parameters", {}).items():
            self.check_parameter(p, f"components.parameters.{name}")
        for name, h in comps.get("headers", {}).items():
            self.check_header(h, f"components.headers.{name}")
        for name, r in comps.get("responses", {}).items():
            self.check_response(r, f"components.responses.{name}", None)
        for name, s in comps.get("securitySchemes", {}).items():
            s = deref(self.doc, s)
            t = s.get("type")
            if t not in ("apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"):
                self.bad(f"components.securitySchemes.{name}", f"bad type '{t}'")
            if t == "http" and not isinstance(s.get("scheme"), str):
                self.bad(f"components.securitySchemes.{name}", "http scheme without 'scheme'")

    def check_tags_and_security(self):
        declared = set()
        for t in self.doc.get("tags", []):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                self.bad("tags", "a tag without a name")
            else:
                declared.add(t["name"])
        self.declared_tags = declared
        self.schemes = set(self.doc.get("components", {}).get("securitySchemes", {}))
        self.check_security(self.doc.get("security"), "security")

    def check_security(self, sec, where):
        if sec is None:
            return
        if not isinstance(sec, list):
            self.bad(where, "not a list")
            return
        for req in sec:
            for name in req:
                if name not in self.schemes:
                    self.bad(where, f"unknown security scheme '{name}'")

    def check_parameter(self, p, where):
        try:
            p = deref(self.doc, p)
        except KeyError as e:
            self.bad(where, str(e))
            return None
        if not isinstance(p.get("name"), str) or p.get("in") not in (
                "path", "query", "header", "cookie"):
            self.bad(where, "a parameter needs a name and in: path|query|header|cookie")
            return None
        if ("schema" in p) == ("content" in p):
            self.bad(where, "a parameter needs exactly one of schema and content")
        if "schema" in p:
            self.check_schema(p["schema"], where + ".schema")
        if p["in"] == "path" and p.get("required") is not True:
            self.bad(where, "a path parameter must be required")
        return p

    def check_header(self, h, where):
        try:
            h = deref(self.doc, h)
        except KeyError as e:
            self.bad(where, str(e))
            return
        if "name" in h or "in" in h:
            self.bad(where, "a header object has no name or in")
        if ("schema" in h) == ("content" in h):
            self.bad(where, "a header needs exactly one of schema and content")
        if "schema" in h:
            self.check_schema(h["schema"], where + ".schema")

    def check_response(self, r, where, status):
        try:
            r = deref(self.doc, r)
        except KeyError as e:
            self.bad(where, str(e))
            return
        if not isinstance(r.get("description"), str):
            self.bad(where, "a response needs a description")
        headers = {k.lower(): v for k, v in r.get("headers", {}).items()}
        if "content-type" in headers:
            self.bad(where, "Content-Type must not be declared as a header")
        for name, h in r.get("headers", {}).items():
            self.check_header(h, f"{where}.headers.{name}")
        if "x-request-id" not in headers:
            self.bad(where, "does not declare the X-Request-Id header")
        content = r.get("content", {})
        for mt, media in content.items():
            if "schema" in media:
                self.check_schema(media["schema"], f"{where}.content.{mt}.schema")
        if status is None:
            return
        if status == "503" and "retry-after" not in headers:
            self.bad(where, "a 503 must declare Retry-After")
        if status == "405" and "allow" not in headers:
            self.bad(where, "a 405 must declare Allow")
        if status == "401" and "www-authenticate" not in headers:
            self.bad(where, "a 401 must declare WWW-Authenticate")
        if status[0] in "45":
            schema = content.get("application/json", {}).get("schema")
            if schema is None or not self.uses_error(schema, 0):
                self.bad(where, "an error response must use the Error schema (application/json)")

    def uses_error(self, schema, depth):
        """The schema is Error, or an allOf/oneOf/anyOf that includes it."""
        if depth > 8 or not isinstance(schema, dict):
            return False
        if schema.get("$ref") == ERROR_REF:
            return True
        for k in ("allOf", "oneOf", "anyOf"):
            if any(self.uses_error(s, depth + 1) for s in schema.get(k, [])):
                return True
        return False

    def check_path_item(self, path, item, op_ids):
        where = f"paths.{path}"
        if not path.startswith("/"):
            self.bad(where, "a path must start with '/'")
        if not isinstance(item, dict):
            self.bad(where, "not an object")
            return
        for k in item:
            if k not in PATH_ITEM_KEYS and not k.startswith("x-"):
                self.bad(where, f"unknown field '{k}'")
        template = set(re.findall(r"\{([^}/]+)\}", path))
        common = [self.check_parameter(p, f"{where}.parameters")
                  for p in item.get("parameters", [])]
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            ow = f"{where}.{method}"
            for k in op:
                if k not in OPERATION_KEYS and not k.startswith("x-"):
                    self.bad(ow, f"unknown field '{k}'")
            oid = op.get("operationId")
            if not isinstance(oid, str) or not oid:
                self.bad(ow, "no operationId")
            elif oid in op_ids:
                self.bad(ow, f"operationId '{oid}' also used by {op_ids[oid]}")
            else:
                op_ids[oid] = ow
            for t in op.get("tags", []):
                if t not in self.declared_tags:
                    self.bad(ow, f"tag '{t}' is not declared in the top-level tags")
            self.check_security(op.get("security"), ow + ".security")
            def key(p):
                return (p["name"].lower() if p["in"] == "header" else p["name"], p["in"])

            own, seen = [], set()
            for p in op.get("parameters", []):
                p = self.check_parameter(p, f"{ow}.parameters")
                if p is None:
                    continue
                if key(p) in seen:
                    self.bad(ow, f"parameter {key(p)} declared twice")
                seen.add(key(p))
                own.append(p)
            # the operation's own parameters override the path item's
            params = own + [p for p in common if p is not None and key(p) not in seen]
            in_path = {p["name"] for p in params if p["in"] == "path"}
            if in_path != template:
                self.bad(ow, f"path parameters {sorted(in_path)} differ from the template's "
                         f"{sorted(template)}")
            rb = op.get("requestBody")
            if rb is not None:
                rb = deref(self.doc, rb)
                if not isinstance(rb.get("content"), dict) or not rb["content"]:
                    self.bad(ow, "requestBody without content")
                for mt, media in rb.get("content", {}).items():
                    if "schema" in media:
                        self.check_schema(media["schema"], f"{ow}.requestBody.{mt}")
            responses = op.get("responses")
            if not isinstance(responses, dict) or not responses:
                self.bad(ow, "no responses")
                continue
            for status, r in responses.items():
                if not STATUS_KEY.match(status):
                    self.bad(ow, f"bad response key '{status}'")
                    continue
                self.check_response(r, f"{ow}.responses.{status}", status)


# --- Validation of recorded exchanges ----------------------------------------------


def strict_copy(doc):
    """The document with unevaluatedProperties: false added to every object
    schema under components.schemas that lists properties and says nothing
    about others, so that undocumented response fields are reported."""
    doc = copy.deepcopy(doc)

    def walk(s):
        if isinstance(s, dict):
            if ("properties" in s and "additionalProperties" not in s
                    and "unevaluatedProperties" not in s and "patternProperties" not in s):
                s["unevaluatedProperties"] = False
            for k, v in s.items():
                if k in ("properties", "$defs", "patternProperties"):
                    for sub in v.values():
                        walk(sub)
                elif k in ("items", "additionalProperties", "not", "if", "then", "else",
                           "contains", "propertyNames", "unevaluatedItems"):
                    walk(v)
                elif k in ("allOf", "oneOf", "anyOf", "prefixItems"):
                    for sub in v:
                        walk(sub)
        return s

    for schema in doc.get("components", {}).get("schemas", {}).values():
        walk(schema)
    return doc


def format_checker():
    fc = jsonschema.FormatChecker()

    @fc.checks("date-time")
    def date_time(value):
        return not isinstance(value, str) or RFC3339.match(value) is not None

    return fc


class Validator:
    def __init__(self, doc):
        self.doc = doc
        self.strict = strict_copy(doc)
        self.fc = format_checker()
        self.templates = []
        for path in doc.get("paths", {}):
            parts = path.strip("/").split("/") if path != "/" else []
            literal = sum(1 for p in parts if not p.startswith("{"))
            rx = "^" + re.sub(r"\\\{[^}/]+\\\}", "[^/]+", re.escape(path)) + "$"
            self.templates.append((literal, path, re.compile(rx)))
        # concrete paths before templated ones (OpenAPI's matching rule)
        self.templates.sort(key=lambda t: -t[0])
        self.covered = set()
        self.validators = {}

    def match_path(self, path):
        for _, tmpl, rx in self.templates:
            if rx.match(path):
                return tmpl
        return None

    def schema_errors(self, pointer, instance):
        """Errors of instance against the schema at pointer (in the strict
        copy, so that its $refs resolve against the whole document)."""
        v = self.validators.get(pointer)
        if v is None:
            root = dict(self.strict)
            root["$ref"] = pointer
            v = jsonschema.Draft202012Validator(root, format_checker=self.fc)
            self.validators[pointer] = v
        return sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))

    def check(self, ex):
        """List of problems with one exchange (empty when it validates)."""
        method = ex["method"].upper()
        path = urlsplit(ex["path"]).path or "/"
        status = str(ex["status"])
        headers = {}
        for name, value in ex.get("headers", []):
            headers.setdefault(name.lower(), value)
        tmpl = self.match_path(path)
        op_method = "get" if method == "HEAD" else method.lower()
        item = self.doc["paths"].get(tmpl) if tmpl else None
        op = item.get(op_method) if item else None
        comps = self.doc.get("components", {}).get("responses", {})
        if op is not None:
            self.covered.add((op["operationId"], status))
            declared = op.get("responses", {})
            key = status if status in declared else status[0] + "XX"
            if key not in declared:
                key = "default" if "default" in declared else None
            if key is None:
                return [f"status {status} is not declared for {op['operationId']} "
                        f"(declared: {', '.join(declared)})"]
            resp_node = declared[key]
            base = (f"#/paths/{pointer_escape(tmpl)}/{op_method}/responses/"
                    f"{pointer_escape(key)}")
        else:
            # Answered by the dispatcher, before any operation.
            if tmpl is None:
                fallback = {"404": "NotFound"}
                expect = "404 NOT_FOUND (no such route)"
            else:
                fallback = {"405": "MethodNotAllowed"}
                expect = "405 METHOD_NOT_ALLOWED (undeclared method)"
            fallback.update({"503": "ServiceUnavailable", "500": "Internal"})
            if status not in fallback or fallback[status] not in comps:
                return [f"expected {expect}, got {status}"]
            resp_node = comps[fallback[status]]
            base = f"#/components/responses/{fallback[status]}"
            self.covered.add((f"{method} {tmpl or '(no route)'}", status))
        resp, base = deref_with_pointer(self.doc, resp_node, base)
        problems = []
        problems += self.check_headers(resp, base, headers)
        if op is None and status == "405":
            allow = {m.strip().upper() for m in headers.get("allow", "").split(",") if m.strip()}
            want = {m.upper() for m in HTTP_METHODS if m in item}
            if "GET" in want:
                want.add("HEAD")
            if allow != want:
                problems.append(f"Allow is '{headers.get('allow')}', the document says "
                                f"{', '.join(sorted(want))}")
        problems += self.check_body(ex, resp, base, headers, method, status)
        return problems

    def check_headers(self, resp, base, headers):
        problems = []
        for name, h in resp.get("headers", {}).items():
            h, hptr = deref_with_pointer(self.doc, h, f"{base}/headers/{pointer_escape(name)}")
            value = headers.get(name.lower())
            if value is None:
                if h.get("required"):
                    problems.append(f"required header {name} missing")
                continue
            schema = h.get("schema", {})
            inst = value
            if schema.get("type") == "integer":
                if not re.fullmatch(r"-?\d+", value):
                    problems.append(f"header {name}: '{value}' is not an integer")
                    continue
                inst = int(value)
            for e in self.schema_errors(hptr + "/schema", inst):
                problems.append(f"header {name}: '{value}': {e.message}")
        return problems

    def check_body(self, ex, resp, base, headers, method, status):
        content = resp.get("content", {})
        body_len = ex.get("body_len", 0)
        if method == "HEAD":
            return [] if body_len == 0 else ["HEAD response has a body"]
        if not content:
            return [] if body_len == 0 else [f"status {status} declares no content, got a body"]
        ctype = headers.get("content-type")
        if ctype is None:
            return ["no Content-Type"]
        mt = ctype.split(";")[0].strip().lower()
        media_key = None
        for k in content:
            k_l = k.lower()
            if k_l == mt or k_l == "*/*" or (k_l.endswith("/*") and mt.startswith(k_l[:-1])):
                media_key = k
                break
        if media_key is None:
            return [f"Content-Type '{ctype}' is not declared ({', '.join(content)})"]
        if ex.get("curl_code", 0) != 0:
            # The transfer broke off (e.g. a stream cut on purpose); the head
            # was checked, the body is incomplete.
            return []
        if "body" not in ex:
            return [f"body of {body_len} bytes was not recorded (not UTF-8 or too large)"]
        media = content[media_key]
        if "schema" not in media:
            return []
        sptr = f"{base}/content/{pointer_escape(media_key)}/schema"
        if mt == "application/json" or mt.endswith("+json"):
            try:
                body = json.loads(ex["body"])
            except ValueError as e:
                return [f"body is not JSON: {e}"]
        else:
            body = ex["body"]
        problems = []
        for e in self.schema_errors(sptr, body)[:5]:
            at = "/".join(str(p) for p in e.absolute_path) or "(root)"
            problems.append(f"body at {at}: {e.message}")
        # An Error document (not a health entry, whose "error" is a DatabaseProblem)
        if isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict):
            err = body["error"]
            want = CODE_STATUS.get(err.get("code"))
            if want is not None and str(want) != status:
                problems.append(f"error code {err.get('code')} comes with {status}, "
                                f"the contract says {want}")
            if err.get("request_id") != headers.get("x-request-id"):
                problems.append(f"error.request_id '{err.get('request_id')}' differs from "
                                f"X-Request-Id '{headers.get('x-request-id')}'")
        return problems


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    lint = Lint(doc).run()
    for p in lint:
        print(f"lint: {p}")
    print(f"lint: {'ok' if not lint else f'{len(lint)} problem(s)'}")
    passed = failed = 0
    if len(argv) == 3:
        v = Validator(doc)
        with open(argv[2], encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    ex = json.loads(line)
                except ValueError as e:
                    print(f"record line {n}: not JSON: {e}")
                    failed += 1
                    continue
                problems = v.check(ex)
                if problems:
                    failed += 1
                    rid = {k.lower(): val for k, val in ex.get("headers", [])}.get("x-request-id")
                    print(f"FAIL {ex['method']} {ex['path']} -> {ex['status']} "
                          f"(X-Request-Id {rid}):")
                    for p in problems:
                        print(f"    {p}")
                else:
                    passed += 1
        ops = {op["operationId"] for item in doc.get("paths", {}).values()
               for m, op in item.items() if m in HTTP_METHODS}
        seen_ops = {o for o, _ in v.covered}
        for o in sorted(ops - seen_ops):
            print(f"FAIL operation {o} was never exercised by the suites")
            failed += 1
        print("exercised: " + ", ".join(f"{o} {s}" for o, s in sorted(v.covered)))
    if lint:
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
