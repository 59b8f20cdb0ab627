#!/usr/bin/env bash
# history_zstd.sh - `pgfault run --history-zstd` writes history.jsonl.zst,
# byte for byte the same history as the plain run once decompressed (sim
# mode, same seed), and `pgfault check` reads it streaming with the same
# verdict and digest; a truncated or corrupted .zst is exit 2 naming the
# file, never a silently shorter history. A run's witnesses are the same
# read back from the plain file as from the .zst.
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-zstd.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
command -v zstd >/dev/null || {
    echo "FAIL: the zstd program is missing (scripts/install-deps)"
    exit 1
}

timeout 120 "$PGFAULT" run --quiet --scenario cancel-race --history-zstd --out "$TMP/z" ||
    fail "run --history-zstd exited $?"
timeout 120 "$PGFAULT" run --quiet --scenario cancel-race --out "$TMP/p" || fail "plain run exited $?"
[ -s "$TMP/z/history.jsonl.zst" ] || fail "no history.jsonl.zst"
[ ! -e "$TMP/z/history.jsonl" ] || fail "history.jsonl written beside the .zst"
zstd -qdc "$TMP/z/history.jsonl.zst" >"$TMP/dec.jsonl" || fail "zstd cannot read it"
cmp -s "$TMP/dec.jsonl" "$TMP/p/history.jsonl" || fail "decompressed history differs from the plain one"
zsize=$(stat -c %s "$TMP/z/history.jsonl.zst")
psize=$(stat -c %s "$TMP/p/history.jsonl")
[ "$zsize" -lt $((psize / 4)) ] || fail "not compressed: $zsize bytes vs $psize"

"$PGFAULT" check --digest "$TMP/z/history.jsonl.zst" >"$TMP/cz" 2>&1 || fail "check .zst exited $?"
"$PGFAULT" check --digest "$TMP/p/history.jsonl" >"$TMP/cp" 2>&1 || fail "check plain exited $?"
grep -q '^digest [0-9a-f]\{64\}$' "$TMP/cz" || fail "no digest from the .zst check"
sed -i "s#$TMP/[a-z]*/history.jsonl\(.zst\)\?#HISTORY#g" "$TMP/cz" "$TMP/cp"
cmp -s "$TMP/cz" "$TMP/cp" || fail "check output differs: $(cat "$TMP/cz") vs $(cat "$TMP/cp")"

# a violation is found the same way in a compressed history
timeout 120 "$PGFAULT" run --quiet --scenario incident --bugs close-frees-during-connect \
    --history-zstd --out "$TMP/bug" >/dev/null 2>&1
"$PGFAULT" check "$TMP/bug/history.jsonl.zst" >"$TMP/cb" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "check of a buggy .zst history exited $rc, want 1: $(head -3 "$TMP/cb")"

# The run's witnesses are the same whether the checker read them back from
# the plain history file or from the .zst's frames (decompressed, the frame
# being written ended first): during the history (illegal_transition,
# double_completion) and at its end (missing_completion).
for case in "incident close-frees-during-connect" "cancel-race callback-twice" \
    "incident lost-completion --iterations 3"; do
    read -r sc bug more <<<"$case"
    d="$TMP/w-$sc-$bug"
    # shellcheck disable=SC2086
    timeout 120 "$PGFAULT" run --quiet --scenario "$sc" --bugs "$bug" $more --out "$d-p" >/dev/null 2>&1
    # shellcheck disable=SC2086
    timeout 120 "$PGFAULT" run --quiet --scenario "$sc" --bugs "$bug" $more --history-zstd \
        --out "$d-z" >/dev/null 2>&1
    /usr/bin/python3 - "$d-p/report.json" "$d-z/report.json" "$case" <<'PY' || fail "witnesses: $case"
import json, sys
checks = [[c for s in json.load(open(p))["scenarios"] for c in s["checks"] if not c["passed"]]
          for p in sys.argv[1:3]]
if checks[0] != checks[1]:
    sys.exit(f"{sys.argv[3]}: failing checks differ, plain vs .zst:\n{checks[0]}\n{checks[1]}")
if not any(c.get("witness") for c in checks[0]):
    sys.exit(f"{sys.argv[3]}: no witness to compare: {checks[0]}")
PY
done

# truncated (mid-frame) and corrupted: exit 2, the file named
head -c $((zsize / 2)) "$TMP/z/history.jsonl.zst" >"$TMP/trunc.jsonl.zst"
"$PGFAULT" check "$TMP/trunc.jsonl.zst" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] || fail "truncated .zst: exit $rc, want 2"
grep -q "trunc.jsonl.zst.*corrupt or truncated zstd" "$TMP/err" || fail "truncated: $(cat "$TMP/err")"
head -c $((zsize - 2)) "$TMP/z/history.jsonl.zst" >"$TMP/short.jsonl.zst"
"$PGFAULT" check "$TMP/short.jsonl.zst" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] || fail "a .zst missing its last bytes: exit $rc, want 2"
grep -q "short.jsonl.zst" "$TMP/err" || fail "short: $(cat "$TMP/err")"
cp "$TMP/z/history.jsonl.zst" "$TMP/flip.jsonl.zst"
printf '\377\377\377\377' | dd of="$TMP/flip.jsonl.zst" bs=1 seek=$((zsize / 2)) conv=notrunc 2>/dev/null
"$PGFAULT" check "$TMP/flip.jsonl.zst" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 2 ] || fail "corrupted .zst: exit $rc, want 2"
grep -q "flip.jsonl.zst" "$TMP/err" || fail "corrupt: $(cat "$TMP/err")"

[ "$fails" -eq 0 ] && echo "history_zstd: all passed"
exit $((fails > 0))
