#!/usr/bin/env bash
# shards.sh - `pgfault run --shard K/N`: four shards run as separate
# processes cover the scenarios exactly once, each with the same verdict and
# figures as in one unsharded run of the same seeds (sim mode); bad --shard
# values are exit 2.
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
# five sim scenarios, one with a deliberate bug so the verdict is a failure
SC=(--scenario cancel-race --scenario auth-storm --scenario truncated --scenario slow-auth
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

[ "$fails" -eq 0 ] && echo "shards: all passed"
exit $((fails > 0))
