#!/usr/bin/env bash
# orm_scenario.sh - `server.answers` in a scenario: the service's own health
# query (SELECT count(*) FROM users) is answered, so every check is healthy
# (without the answers the same scenario gets server_error for each); the
# --explain output carries the answers and replays to the same digest; a bad
# answer in a scenario exits 2 naming file:line:col.
set -euo pipefail
: "${PGFAULT:?PGFAULT must point at the pgfault binary}"
here=$(dirname "$0")
. "$here/serve_lib.bash"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgf-scans-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
PY=/usr/bin/python3

cat >"$tmp/sc.yaml" <<'YAML'
name: canned-health
description: the service's own health check, answered by server.answers
seed: 3
mode: sim
server:
  users:
    - {name: app, password: s3cret, method: scram-sha-256}
  databases: [app]
  answers:
    - statement: SELECT count(*) FROM users
      columns: [{name: count, type: int8}]
      rows: [[42]]
client: {user: app, password: s3cret, database: app}
workload:
  sessions: 3
  iterations: 4
  query: SELECT count(*) FROM users
YAML
outcome() { "$PY" -c 'import json,sys; s=json.load(open(sys.argv[1]))["scenarios"][0]; print(s["outcomes"][sys.argv[2]])' "$@"; }

timeout 60 "$PGFAULT" run "$tmp/sc.yaml" --quiet --out "$tmp/a" || fail "run with answers failed"
[ "$(outcome "$tmp/a/report.json" healthy)" = 12 ] || fail "not every check was healthy with server.answers"

sed '/^  answers:/,/rows:/d' "$tmp/sc.yaml" >"$tmp/none.yaml"
timeout 60 "$PGFAULT" run "$tmp/none.yaml" --quiet --out "$tmp/b" || true
[ "$(outcome "$tmp/b/report.json" server_error)" = 12 ] ||
    fail "without server.answers the health query should get server_error"

"$PGFAULT" run "$tmp/sc.yaml" --explain >"$tmp/explained.yaml"
grep -q '^  answers: \[{"statement":"SELECT count(\*) FROM users"' "$tmp/explained.yaml" ||
    fail "--explain lost server.answers: $(grep -n answers "$tmp/explained.yaml")"
timeout 60 "$PGFAULT" run "$tmp/explained.yaml" --quiet --out "$tmp/c" || fail "the explained scenario failed"
cmp -s <(grep -v '"wall"' "$tmp/a/history.jsonl" | "$PY" -c 'import sys,json; [print(json.dumps({k:v for k,v in json.loads(l).items() if k not in ("wall","tool")})) for l in sys.stdin]') \
    <(grep -v '"wall"' "$tmp/c/history.jsonl" | "$PY" -c 'import sys,json; [print(json.dumps({k:v for k,v in json.loads(l).items() if k not in ("wall","tool")})) for l in sys.stdin]') ||
    fail "the explained scenario did not replay the same history"

sed 's/type: int8/type: money/' "$tmp/sc.yaml" >"$tmp/bad.yaml"
rc=0
"$PGFAULT" run "$tmp/bad.yaml" --quiet --out "$tmp/d" 2>"$tmp/bad.err" || rc=$?
[ "$rc" -eq 2 ] || fail "bad server.answers: exit $rc, want 2"
grep -qF "$tmp/bad.yaml:11:37: unsupported column type 'money'" "$tmp/bad.err" ||
    fail "bad server.answers: $(cat "$tmp/bad.err")"
echo PASS
