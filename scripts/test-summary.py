"""Sums the Check results of a meson test run into one closing line.

Each Check suite prints "NN%: Checks: X, Failures: F, Errors: E" and each
conformance script "N passed, N failed"; a suite that crashed or timed out
before printing counts as one failure.

Every failed check is also printed on a line of its own starting with
"failed: " (the suite, then Check's "file:line:F:case:test:i: message" or the
OpenAPI validator's "FAIL ..."), so that a CI log shown only in part still
names what failed.
"""
import json
import re
import sys

line_re = re.compile(r"(\d+)%: Checks: (\d+), Failures: (\d+), Errors: (\d+)")
plain_re = re.compile(r"^(\d+) passed, (\d+) failed", re.M)
# Check's line for a failed or erroring test ("file:line:F:case:test:i: msg"),
# and the OpenAPI validator's for a response that does not validate ("FAIL ...").
fail_re = re.compile(r"^(?:[^:\n]+:\d+:[FE]:|FAIL )[^\n]*$", re.M)
passed = failed = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for raw in f:
        test = json.loads(raw)
        out = test.get("stdout", "") or ""
        for bad_line in fail_re.findall(out):
            print(f"failed: {test.get('name')}: {bad_line[:400]}")
        found = line_re.findall(out)
        found += [("", str(int(p) + int(f)), f, "0") for p, f in plain_re.findall(out)]
        if not found:
            failed += 1
            print(f"failed: suite {test.get('name')}: no Check summary ({test.get('result')})")
            continue
        for _, checks, failures, errors in found:
            bad = int(failures) + int(errors)
            passed += int(checks) - bad
            failed += bad
        if test.get("result") not in ("OK", "EXPECTEDFAIL") and all(
            int(f) + int(e) == 0 for _, _, f, e in found
        ):
            failed += 1
            print(f"failed: suite {test.get('name')}: {test.get('result')}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
