#!/usr/bin/env bash
# cli_help.sh - the commands a stranger types first: `pgfault help CMD`,
# `serve --help` naming every option serve takes, `run --list --json`,
# `check --json | head` (no error when the reader stops early), `replay`
# of a missing file, and a misspelled fault action named at its own line.
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# help CMD is CMD --help, for every subcommand
for cmd in serve faults run check replay spec url; do
    "$PGFAULT" help "$cmd" >"$TMP/a" 2>&1
    rc=$?
    "$PGFAULT" "$cmd" --help >"$TMP/b" 2>&1
    [ "$rc" = 0 ] || fail "help $cmd: exit $rc"
    cmp -s "$TMP/a" "$TMP/b" || fail "help $cmd differs from $cmd --help"
    grep -q "^usage: pgfault $cmd" "$TMP/a" || fail "help $cmd: no usage line for $cmd"
done
"$PGFAULT" help nosuch >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "help nosuch: want exit 2"
grep -q "unknown subcommand 'nosuch'" "$TMP/err" || fail "help nosuch: $(cat "$TMP/err")"

# serve --help names every long option serve accepts
"$PGFAULT" serve --help >"$TMP/serve.help"
for opt in --listen --unix-socket-dir --no-tcp --user --database --max-connections --seed \
    --faults --fault-log --control --allow-remote-control --log-level --quiet --help; do
    grep -q -- "$opt" "$TMP/serve.help" || fail "serve --help does not mention $opt"
done

# run --list --json: the same scenarios as --list, as JSON
"$PGFAULT" run --list --json >"$TMP/list.json" || fail "run --list --json: exit $?"
"$PGFAULT" run --list >"$TMP/list.txt"
"$PY" - "$TMP/list.json" "$TMP/list.txt" <<'PYEOF' || fail "run --list --json content"
import json, sys
j = json.load(open(sys.argv[1]))
names = [l.split()[0] for l in open(sys.argv[2]) if l.strip()]
assert [s["name"] for s in j] == names, ([s["name"] for s in j], names)
for s in j:
    assert s["mode"] in ("sim", "stress") and s["description"] and s["seed"].isdigit(), s
PYEOF
"$PGFAULT" run --json >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "run --json without --list: want exit 2"

# check --json | head: the verdict stays the exit code, no error text
"$PGFAULT" run --scenario incident --sessions 4 --iterations 3 --bugs close-frees-during-connect \
    --out "$TMP/run" \
    >/dev/null 2>&1
"$PGFAULT" check "$TMP/run/history.jsonl" --json 2>"$TMP/err" | head -1 >/dev/null
rc=${PIPESTATUS[0]}
[ "$rc" = 1 ] || fail "check --json | head: exit $rc, want 1 (violations)"
[ ! -s "$TMP/err" ] || fail "check --json | head printed: $(cat "$TMP/err")"

# replay of a file that is not there: say so, no ':-1:-1:'
"$PGFAULT" replay "$TMP/nonexistent.json" >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "replay nonexistent: want exit 2"
want="pgfault replay: $TMP/nonexistent.json: No such file or directory (give the report.json a run wrote)"
[ "$(cat "$TMP/err")" = "$want" ] || fail "replay nonexistent said '$(cat "$TMP/err")'"

# a misspelled action with its parameter: the action's line:col, a suggestion
printf 'rules:\n  - name: slow\n    phase: query\n    action: dely\n    ms: 200\n' >"$TMP/f.yaml"
"$PGFAULT" serve --faults "$TMP/f.yaml" --listen 127.0.0.1:0 >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "serve with a bad rule: want exit 2"
grep -qF "$TMP/f.yaml:4:13: unknown action 'dely' in rule 'slow' (did you mean 'delay'?" \
    "$TMP/err" || fail "bad action: $(cat "$TMP/err")"

# an unknown --bugs name: exit 2, the bad list named, the known names listed
"$PGFAULT" run --scenario incident --bugs close-frees-during-conect --out "$TMP/never" \
    >/dev/null 2>"$TMP/err"
[ $? = 2 ] || fail "run --bugs with a typo: want exit 2"
grep -qF "run: --bugs 'close-frees-during-conect': unknown bug name (known: none, close-frees-during-connect," \
    "$TMP/err" || fail "--bugs typo: $(cat "$TMP/err")"
[ ! -e "$TMP/never" ] || fail "--bugs typo: a run started"

[ "$fails" = 0 ] || exit 1
echo "ok: help, serve --help, run --list --json, check | head, replay, fault typos, --bugs typo"
