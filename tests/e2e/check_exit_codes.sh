#!/usr/bin/env bash
# check_exit_codes.sh - `pgfault check` end to end: exit 0 on a valid
# history, 1 with the violation named for every v_<kind>.jsonl fixture,
# 2 with file:line for malformed input and bad usage; --json is valid JSON;
# a spec embedded in the meta line replaces --spec.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
DATA="$PGF_SRC/tests/data"
SPEC="$DATA/spec_session.json"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-check.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3
fails=0

expect() { # expect CODE DESCRIPTION -- command...
    local want=$1 what=$2
    shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, want $want"
        sed 's/^/  out: /' "$TMP/out" | head -20
        sed 's/^/  err: /' "$TMP/err" | head -20
        fails=$((fails + 1))
        return 1
    fi
    return 0
}
contains() { # contains FILE TEXT DESCRIPTION
    if ! grep -qF -- "$2" "$1"; then
        echo "FAIL: $3: '$2' not in output"
        sed 's/^/  | /' "$1" | head -20
        fails=$((fails + 1))
    fi
}

expect 0 "--help" -- "$PGFAULT" check --help && contains "$TMP/out" "exit codes" "--help"
expect 2 "no history" -- "$PGFAULT" check
expect 2 "unknown option" -- "$PGFAULT" check --frobnicate x.jsonl
expect 0 "valid history" -- "$PGFAULT" check "$DATA/histories/valid_basic.jsonl" --spec "$SPEC" &&
    contains "$TMP/out" "no violations" "valid history"

for f in "$DATA"/histories/v_*.jsonl; do
    kind=$(basename "$f" .jsonl)
    kind=${kind#v_}
    if expect 1 "$kind" -- "$PGFAULT" check "$f" --spec "$SPEC"; then
        contains "$TMP/out" "$kind" "$kind summary"
        contains "$TMP/out" "witness" "$kind witness"
    fi
done

# --json: one document with the counts
if expect 1 "json" -- "$PGFAULT" check "$DATA/histories/v_use_after_close.jsonl" --spec "$SPEC" --json; then
    if ! "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["violations"]==1 and d["counts"]["use_after_close"]==1 and d["first"][0]["witness"], d' "$TMP/out"; then
        echo "FAIL: --json output"
        fails=$((fails + 1))
    fi
fi

# malformed history: exit 2 naming file:line
bad="$TMP/bad.jsonl"
head -n 2 "$DATA/histories/valid_basic.jsonl" >"$bad"
echo '{"seq": 99, "type": "invoke", garbage' >>"$bad"
expect 2 "malformed history" -- "$PGFAULT" check "$bad" --spec "$SPEC" && contains "$TMP/err" "$bad:3:" "malformed history"
expect 2 "missing history" -- "$PGFAULT" check "$TMP/nope.jsonl" --spec "$SPEC"

# bad spec: exit 2 naming the spec and the problem
sed 's/"to": "CONNECTING", "op": "open"/"to": "CONECTING", "op": "open"/' "$SPEC" >"$TMP/badspec.json"
expect 2 "bad spec" -- "$PGFAULT" check "$DATA/histories/valid_basic.jsonl" --spec "$TMP/badspec.json" &&
    contains "$TMP/err" "unknown state \"CONECTING\"" "bad spec"

# no --spec and none embedded: the binary's compiled-in spec (the session
# manager's own table) is used; a history recorded by `pgfault run` passes it
expect 0 "run then check" -- "$PGFAULT" run --scenario incident \
    --quiet --out "$TMP/run"
expect 0 "compiled-in spec" -- "$PGFAULT" check "$TMP/run/history.jsonl"

# a run's --out directory stands for the history in it (plain or .zst);
# any other directory is named as one, exit 2 (it was "read error:
# Input/output error" on line 1)
expect 0 "run directory" -- "$PGFAULT" check "$TMP/run" &&
    contains "$TMP/out" "$TMP/run/history.jsonl:" "run directory"
expect 0 "run directory, zstd" -- "$PGFAULT" run --scenario incident --history-zstd \
    --quiet --out "$TMP/runz"
expect 0 "run directory, zstd" -- "$PGFAULT" check "$TMP/runz/" &&
    contains "$TMP/out" "$TMP/runz/history.jsonl.zst:" "run directory, zstd"
mkdir -p "$TMP/empty"
expect 2 "directory without a history" -- "$PGFAULT" check "$TMP/empty" &&
    contains "$TMP/err" "$TMP/empty: a directory without history.jsonl" "directory without a history"
mkdir -p "$TMP/both"
cp "$DATA/histories/valid_basic.jsonl" "$TMP/both/history.jsonl"
cp "$TMP/runz/history.jsonl.zst" "$TMP/both/"
expect 2 "directory with both" -- "$PGFAULT" check "$TMP/both" &&
    contains "$TMP/err" "holds both history.jsonl and history.jsonl.zst" "directory with both"
# several scenarios: one history each, in DIR/NAME/; named, sorted
mkdir -p "$TMP/multi/b-scn" "$TMP/multi/a-scn"
cp "$DATA/histories/valid_basic.jsonl" "$TMP/multi/b-scn/history.jsonl"
cp "$TMP/runz/history.jsonl.zst" "$TMP/multi/a-scn/"
expect 2 "directory of scenarios" -- "$PGFAULT" check "$TMP/multi" &&
    contains "$TMP/err" "a run of several scenarios, one history each" "directory of scenarios" &&
    [ "$(grep -c '^  ' "$TMP/err")" = 2 ] &&
    [ "$(sed -n 2p "$TMP/err")" = "  $TMP/multi/a-scn/history.jsonl.zst" ] ||
    { echo "FAIL: directory of scenarios: $(cat "$TMP/err")"; fails=$((fails + 1)); }
expect 2 "directory as --server-history" -- "$PGFAULT" check "$TMP/run/history.jsonl" \
    --server-history "$TMP/empty" && contains "$TMP/err" "$TMP/empty: Is a directory" "server dir"

# spec embedded in the meta line: no --spec needed; stdin works too
"$PY" - "$SPEC" "$DATA/histories/valid_basic.jsonl" "$TMP/embedded.jsonl" <<'PYEOF'
import json, sys
spec = json.load(open(sys.argv[1]))
lines = open(sys.argv[2]).read().splitlines()
meta = json.loads(lines[0]); meta["spec"] = spec
with open(sys.argv[3], "w") as f:
    f.write(json.dumps(meta) + "\n")
    for l in lines[1:]:
        f.write(l + "\n")
PYEOF
expect 0 "embedded spec" -- "$PGFAULT" check "$TMP/embedded.jsonl" --digest && contains "$TMP/out" "digest " "digest"
expect 0 "stdin" -- bash -c "\"$PGFAULT\" check - <\"$TMP/embedded.jsonl\""

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "ok"
