#!/usr/bin/env bash
# report_junit.sh - junit.xml as a CI system reads it: the same testcases
# (classname + name) whether the scenario passes or fails, each with a
# non-zero time, the failure inside the failing testcase; valid against
# tests/data/junit-10.xsd (xmllint) and read back by a JUnit consumer's
# parser (python3-junitparser, Debian). A missing tool FAILS the test.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-junit.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
command -v xmllint >/dev/null || { echo "FAIL: xmllint missing (scripts/install-deps)"; exit 1; }
"$PY" -c 'import junitparser' || { echo "FAIL: python3-junitparser missing (scripts/install-deps)"; exit 1; }

# The incident scenario, small (runs three times in CI: normal, ASan, TSan).
"$PGFAULT" run --scenario incident --explain |
    sed 's/^  min_checks: 200$/  min_checks: 40/' >"$TMP/incident.yaml"
grep -q '^  min_checks: 40$' "$TMP/incident.yaml" || fail "could not shrink the incident scenario"
"$PGFAULT" run "$TMP/incident.yaml" --sessions 8 --iterations 5 --out "$TMP/pass" \
    >"$TMP/pass.log" 2>&1
rc=$?
[ "$rc" = 0 ] || fail "incident: exit $rc, want 0"
"$PGFAULT" run "$TMP/incident.yaml" --sessions 8 --iterations 5 \
    --bugs close-frees-during-connect --out "$TMP/fail" >"$TMP/fail.log" 2>&1
rc=$?
[ "$rc" = 1 ] || fail "incident --bugs close-frees-during-connect: exit $rc, want 1"
for d in pass fail; do
    xmllint --noout --schema "$PGF_SRC/tests/data/junit-10.xsd" "$TMP/$d/junit.xml" ||
        fail "$d: junit.xml does not validate against junit-10.xsd"
done
"$PY" - "$TMP/pass/junit.xml" "$TMP/fail/junit.xml" <<'PYEOF' || fail "junitparser checks"
import sys
from junitparser import JUnitXml, Failure, Error

def cases(path):
    xml = JUnitXml.fromfile(path)
    out = {}
    for suite in xml:
        for case in suite:
            key = (case.classname, case.name)
            assert key not in out, f"{path}: duplicate testcase {key}"
            out[key] = case
    return out

ok, bad = cases(sys.argv[1]), cases(sys.argv[2])
assert set(ok) == set(bad), f"testcases differ between pass and fail:\n  only pass: {set(ok) - set(bad)}\n  only fail: {set(bad) - set(ok)}"
assert len(ok) >= 5, len(ok)
for name, c in list(ok.items()) + list(bad.items()):
    assert c.time > 0, f"{name}: time {c.time}"
assert all(c.is_passed for c in ok.values()), [n for n, c in ok.items() if not c.is_passed]
failed = {n: c for n, c in bad.items() if not c.is_passed}
assert ("pgfault.incident", "checker: no illegal_transition") in failed, sorted(failed)
c = failed[("pgfault.incident", "checker: no illegal_transition")]
f = [r for r in c.result if isinstance(r, Failure)]
assert len(f) == 1, c.result
assert f[0].type == "illegal_transition", f[0].type
assert "witness" in f[0].text and "replay: " in f[0].text, f[0].text
# a kind whose violations all came after their session's first one has no
# witness of its own; its message must say where the witness is (issue:
# "62 x preempted_not_canceled" with nothing to act on)
for (cls, name), c in failed.items():
    if not name.startswith("checker: no "):
        continue
    f = [r for r in c.result if isinstance(r, Failure)][0]
    assert "witness" in f.text.split("replay:")[0].split("\n", 1)[-1] or \
        "each on a session with an earlier violation (whose own check has the witness)" in f.message, \
        (name, f.message, f.text)
c = failed.get(("pgfault.incident", "checker: no preempted_not_canceled"))
assert c is not None, sorted(failed)
f = [r for r in c.result if isinstance(r, Failure)][0]
assert "each on a session with an earlier violation" in f.message, f.message
passed_there = [n for n, c in bad.items() if c.is_passed]
assert ("pgfault.incident", "checker: no use_after_close") in passed_there
suite = next(iter(JUnitXml.fromfile(sys.argv[2])))
assert suite.tests == len(bad) and suite.failures == len(failed), (suite.tests, suite.failures)
print(f"ok: {len(ok)} stable testcases, {len(failed)} failing in the bug run")
PYEOF
[ "$fails" = 0 ] || { sed 's/^/  log: /' "$TMP/fail.log" | tail -20; exit 1; }
echo "ok: junit.xml stable, timed, valid"
