#!/usr/bin/env bash
# shards.sh - `pgfault run --shard K/N` and `pgfault merge`: four shards run
# as separate processes cover the scenarios exactly once, each with the same
# verdict and figures as in one unsharded run of the same seeds (sim mode),
# and merged they give the unsharded verdict and counts in report.json and
# junit.xml, every scenario keeping its shard and replay command, and the
# merged report replays as one run to the same figures. Bad
# --shard values and bad merge input (truncated or reordered history, other
# version or spec, an index twice or missing, not a shard) are exit 2 with
# the file named and nothing written.
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-shards.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
# four sim scenarios (one per shard), one with a deliberate bug so the verdict is a failure
SC=(--scenario cancel-race --scenario auth-storm --scenario slow-auth
    --scenario too-many-clients)
BUGS=(--bugs auth-as-connection-lost)

for bad in 0/4 5/4 4 a/b 1/0 -1/4 2/3x; do
    "$PGFAULT" run --quiet --shard "$bad" "${SC[@]}" --out "$TMP/bad" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    [ "$rc" -eq 2 ] || fail "--shard $bad: exit $rc, want 2"
    grep -q -- "--shard" "$TMP/err" || fail "--shard $bad: $(cat "$TMP/err")"
done
"$PGFAULT" run --quiet --shard 2/2 --scenario truncated --out "$TMP/empty" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] && grep -q "no scenario falls in this shard" "$TMP/err" ||
    fail "an empty shard: exit $rc: $(cat "$TMP/err")"

timeout 120 "$PGFAULT" run --quiet "${SC[@]}" "${BUGS[@]}" --out "$TMP/all" >/dev/null 2>&1
all_rc=$?
pids=()
for k in 1 2 3 4; do
    timeout 120 "$PGFAULT" run --quiet --shard "$k/4" "${SC[@]}" "${BUGS[@]}" --out "$TMP/shard$k" \
        >/dev/null 2>&1 &
    pids+=($!)
done
worst=0
for p in "${pids[@]}"; do
    wait "$p"
    rc=$?
    [ "$rc" -gt "$worst" ] && worst=$rc
done
[ "$all_rc" -eq 1 ] || fail "the unsharded run exited $all_rc, want 1 (a violation)"
[ "$worst" -eq "$all_rc" ] || fail "worst shard exit $worst, unsharded $all_rc"

# every scenario in exactly one shard, with the same figures as unsharded
$PY - "$TMP" <<'PYEOF' || fails=$((fails + 1))
import json, sys
t = sys.argv[1]
full = json.load(open(f"{t}/all/report.json"))
seen = {}
for k in range(1, 5):
    r = json.load(open(f"{t}/shard{k}/report.json"))
    sh = r["config"]["shard"]
    assert sh["index"] == k and sh["count"] == 4, sh
    for s in r["scenarios"]:
        assert s["name"] not in seen, f"{s['name']} in shards {seen[s['name']]} and {k}"
        seen[s["name"]] = k
names = [s["name"] for s in full["scenarios"]]
assert sorted(seen) == sorted(names), (sorted(seen), names)
fig = lambda s: (s["passed"], s["health_checks"], s["violations_total"],
                 [(c["name"], c["passed"]) for c in s["checks"]])
shard_fig = {}
for k in range(1, 5):
    for s in json.load(open(f"{t}/shard{k}/report.json"))["scenarios"]:
        shard_fig[s["name"]] = fig(s)
for s in full["scenarios"]:
    assert shard_fig[s["name"]] == fig(s), (s["name"], shard_fig[s["name"]], fig(s))
PYEOF

S=("$TMP/shard1" "$TMP/shard2" "$TMP/shard3" "$TMP/shard4")
"$PGFAULT" merge "${S[@]}" --out "$TMP/merged" >"$TMP/mout" 2>"$TMP/merr"
rc=$?
[ "$rc" -eq "$all_rc" ] || fail "merge exited $rc, want $all_rc: $(cat "$TMP/merr")"
grep -q "^pgfault: FAIL" "$TMP/mout" || fail "merge summary: $(head -3 "$TMP/mout")"
$PY - "$TMP" <<'PYEOF' || fails=$((fails + 1))
import json, sys, xml.etree.ElementTree as ET
t = sys.argv[1]
full = json.load(open(f"{t}/all/report.json"))
m = json.load(open(f"{t}/merged/report.json"))
keys = ("verdict", "passed", "scenarios", "scenarios_failed", "checks", "checks_failed",
        "health_checks", "violations")
assert {k: m["summary"][k] for k in keys} == {k: full["summary"][k] for k in keys}, \
    (m["summary"], full["summary"])
assert sorted(s["name"] for s in m["scenarios"]) == sorted(s["name"] for s in full["scenarios"])
for s in m["scenarios"]:
    sh = json.load(open(f"{s['shard_dir']}/report.json"))
    assert s["shard"] == f"{sh['config']['shard']['index']}/4", s["shard"]
    assert s["replay_command"].startswith("pgfault run --scenario " + s["name"]), s["replay_command"]
ju = lambda p: ET.parse(p).getroot()
a, b = ju(f"{t}/all/junit.xml"), ju(f"{t}/merged/junit.xml")
assert (a.get("tests"), a.get("failures")) == (b.get("tests"), b.get("failures")), \
    (a.attrib, b.attrib)
assert sorted(x.get("name") for x in a) == sorted(x.get("name") for x in b)
html = open(f"{t}/merged/report.html").read()
assert "auth-storm" in html and "shard" in html
PYEOF

# the merged report replays as one run, to the same figures
timeout 120 "$PGFAULT" replay "$TMP/merged/report.json" --quiet --out "$TMP/replayed" >/dev/null 2>&1
rc=$?
[ "$rc" -eq "$all_rc" ] || fail "replay of the merged report exited $rc, want $all_rc"
$PY - "$TMP" <<'PYEOF' || fails=$((fails + 1))
import json, sys
t = sys.argv[1]
a = json.load(open(f"{t}/all/report.json"))["summary"]
b = json.load(open(f"{t}/replayed/report.json"))["summary"]
keys = ("verdict", "scenarios", "checks", "checks_failed", "health_checks", "violations")
assert {k: a[k] for k in keys} == {k: b[k] for k in keys}, (a, b)
PYEOF

# bad input: each case is a copy of the shards with one thing wrong
fixup() { # fixup DIR RELPATH: rewrite DIR/manifest.json's entry for RELPATH
    $PY - "$1" "$2" <<'PYEOF'
import hashlib, json, os, sys
d, rel = sys.argv[1], sys.argv[2]
m = json.load(open(f"{d}/manifest.json"))
data = open(f"{d}/{rel}", "rb").read()
for f in m["files"]:
    if f["path"] == rel:
        f["bytes"], f["sha256"] = len(data), hashlib.sha256(data).hexdigest()
json.dump(m, open(f"{d}/manifest.json", "w"))
PYEOF
}
refuse() { # refuse DESCRIPTION TEXT DIR...
    local what=$1 text=$2
    shift 2
    rm -rf "$TMP/bad-out"
    "$PGFAULT" merge "$@" --out "$TMP/bad-out" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ "$rc" -eq 2 ] || fail "$what: exit $rc, want 2: $(cat "$TMP/err")"
    grep -qF -- "$text" "$TMP/err" || fail "$what: '$text' not in: $(cat "$TMP/err")"
    grep -q "nothing merged" "$TMP/err" || fail "$what: does not say nothing was merged"
    [ ! -e "$TMP/bad-out/report.json" ] || fail "$what: a report was written"
}
fresh() { # fresh NAME: copies of the four shards under $TMP/NAME
    rm -rf "$TMP/$1"
    mkdir -p "$TMP/$1"
    for k in 1 2 3 4; do cp -r "$TMP/shard$k" "$TMP/$1/shard$k"; done
}
hist_of() { # hist_of SHARDDIR: a history path relative to it
    $PY -c 'import json,sys; print([f["path"] for f in json.load(open(sys.argv[1]+"/manifest.json"))["files"] if f["path"].endswith("history.jsonl")][0])' "$1"
}

refuse "an index twice" "shard 1/4 again" "${S[@]}" "$TMP/shard1"
refuse "a missing shard" "missing: 3" "$TMP/shard1" "$TMP/shard2" "$TMP/shard4"
refuse "not a shard" "$TMP/all/report.json: not a shard" "$TMP/all"
refuse "no output at all" "$TMP/nowhere/manifest.json" "$TMP/nowhere"

fresh trunc
h=$(hist_of "$TMP/trunc/shard2")
truncate -s -100 "$TMP/trunc/shard2/$h"
refuse "a truncated history" "$TMP/trunc/shard2/$h" "$TMP"/trunc/shard{1,2,3,4}

fresh reorder
h=$(hist_of "$TMP/reorder/shard3")
$PY - "$TMP/reorder/shard3/$h" <<'PYEOF'
import sys
p = sys.argv[1]
lines = open(p).read().splitlines(True)
lines[5], lines[6] = lines[6], lines[5]
open(p, "w").write("".join(lines))
PYEOF
fixup "$TMP/reorder/shard3" "$h"
refuse "a reordered history" "$TMP/reorder/shard3/$h:7: seq 5 is not greater" "$TMP"/reorder/shard{1,2,3,4}

fresh version
sed -i 's/"version": "[^"]*"/"version": "0.0.1-other"/' "$TMP/version/shard4/report.json"
fixup "$TMP/version/shard4" report.json
refuse "another version" "$TMP/version/shard4/report.json: written by pgfault 0.0.1-other" \
    "$TMP"/version/shard{1,2,3,4}

fresh spec
sed -i 's/"spec_digest": "[0-9a-f]*"/"spec_digest": "0123456789abcdef"/' "$TMP/spec/shard2/report.json"
fixup "$TMP/spec/shard2" report.json
refuse "another spec" "$TMP/spec/shard2/report.json: recorded with spec 0123456789ab" \
    "$TMP"/spec/shard{1,2,3,4}

fresh edited
echo " " >>"$TMP/edited/shard1/report.json"
refuse "a report changed after the run" "$TMP/edited/shard1/report.json" "$TMP"/edited/shard{1,2,3,4}

[ "$fails" -eq 0 ] && echo "shards: all passed"
exit $((fails > 0))
