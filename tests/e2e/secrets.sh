#!/usr/bin/env bash
# secrets.sh - no secret shown (issue 11): one distinctive password goes
# through serve (--user-file, PGFAULT_USERS, --user), url (accepted and
# rejected DATABASE_URLs in every form, --check), run (server.external in
# key=value, URL-userinfo and ?password= form, --explain), check and
# replay; then EVERY stdout, stderr and output file of those commands is
# grepped for it and must not contain it. Inputs (the users file, the
# scenario files) are kept apart from the outputs. Also: --user-file with
# a group-readable mode is refused, --user warns and disappears from
# /proc/PID/cmdline, --allow-remote-control on a non-loopback address
# warns (an unassigned TEST-NET address: nothing listens off loopback).
# The server only knows database "app" (and "postgres"): a client that sends a
# whole conninfo as its database name gets it quoted back in the error,
# password and all, which must be blanked too (pgfault/secret.h).
# Loopback only, bounded waits; stops only the servers it started.
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-sec.XXXXXX")
IN=$TMP/in   # inputs: may hold the password
O=$TMP/outs  # every output: must not
mkdir -p "$IN" "$O"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}
PW='Zq9-Secret-7731'
step=0
# out NAME CMD...: run CMD with stdout/stderr into $O/NAME.{out,err}; echo rc
out() {
    local name=$1
    shift
    "$@" >"$O/$name.out" 2>"$O/$name.err"
    echo $?
}
wait_line() { # FILE PATTERN
    for _ in $(seq 1 100); do
        grep -q "$2" "$1" && return 0
        sleep 0.1
    done
    return 1
}

# --- serve: a users file (0600), PGFAULT_USERS, and the refused modes ---
printf '# test roles\napp:%s:scram-sha-256\nmd5user:%s:md5\n' "$PW" "$PW" >"$IN/users"
chmod 644 "$IN/users"
rc=$(out serve-mode "$PGFAULT" serve --user-file "$IN/users" --listen 127.0.0.1:0)
[ "$rc" = 2 ] || fail "a group-readable --user-file: exit $rc, want 2"
grep -q "chmod 600" "$O/serve-mode.err" || fail "the mode error does not say chmod 600"
chmod 600 "$IN/users"
printf 'app:%s\n' "$PW" >"$IN/bad-users" && chmod 600 "$IN/bad-users"
rc=$(out serve-bad "$PGFAULT" serve --user-file "$IN/bad-users" --listen 127.0.0.1:0)
[ "$rc" = 2 ] || fail "a malformed users file: exit $rc, want 2"
grep -q "bad-users:1:" "$O/serve-bad.err" || fail "the malformed line is not named file:line"

PGFAULT_USERS="envuser:$PW:password" "$PGFAULT" serve --user-file "$IN/users" \
    --listen 127.0.0.1:0 --control 127.0.0.1:0 --fault-log "$O/serve-faults.jsonl" \
    --database app --database postgres --log-level debug >"$O/serve.out" 2>"$O/serve.err" &
pids+=($!)
wait_line "$O/serve.out" '^control ' || fail "serve did not start"
port=$(sed -n 's/^listening tcp 127\.0\.0\.1://p' "$O/serve.out")
ctl=$(sed -n 's/^control //p' "$O/serve.out")
for u in app md5user envuser; do
    PGPASSWORD=$PW PGCONNECT_TIMEOUT=5 psql "host=127.0.0.1 port=$port user=$u dbname=app" \
        -Atc "SELECT 1" >"$O/psql-$u.out" 2>"$O/psql-$u.err" ||
        fail "$u cannot log in with the file/env password"
done
PGPASSWORD=wrong psql "host=127.0.0.1 port=$port user=app dbname=app" -Atc "SELECT 1" \
    >"$O/psql-wrong.out" 2>"$O/psql-wrong.err" && fail "a wrong password was accepted"
for path in stats log coverage rules; do
    curl -s --max-time 5 "$ctl/$path" >"$O/control-$path.out" 2>&1
done

# --user: works, warns, and is blanked from the process list
"$PGFAULT" serve --user "cli:$PW:md5" --listen 127.0.0.1:0 >"$O/serve2.out" 2>"$O/serve2.err" &
p2=$!
pids+=($p2)
wait_line "$O/serve2.out" '^listening' || fail "serve --user did not start"
tr '\0' ' ' </proc/$p2/cmdline >"$O/serve2.cmdline"
grep -q "process list" "$O/serve2.err" || fail "--user with a password does not warn"
port2=$(sed -n 's/^listening tcp 127\.0\.0\.1://p' "$O/serve2.out")
PGPASSWORD=$PW psql "host=127.0.0.1 port=$port2 user=cli dbname=app" -Atc "SELECT 1" \
    >"$O/psql-cli.out" 2>"$O/psql-cli.err" || fail "--user role cannot log in"

# --allow-remote-control off loopback warns (TEST-NET-1: the bind fails)
out serve-remote "$PGFAULT" serve --listen 127.0.0.1:0 --control 192.0.2.1:0 \
    --allow-remote-control >/dev/null
grep -q "no authentication" "$O/serve-remote.err" || fail "no warning for a remote control API"

# --- url: accepted and rejected DATABASE_URLs, every form ---
i=0
for u in "postgresql://app:$PW@127.0.0.1:$port/app" \
    "postgresql://app@127.0.0.1:$port/app?password=$PW" \
    "postgresql+asyncpg://app:$PW@127.0.0.1:$port/app" \
    "postgresql://app:$PW@127.0.0.1:badport/app" \
    "postgresql://app:Zq9/-Secret-7731@127.0.0.1/app" \
    "postgresql://app:Zq9%-Secret-7731@127.0.0.1/app" \
    "postgresql://app:$PW@[::1/app" \
    "mysql://app:$PW@127.0.0.1/app" \
    "host=127.0.0.1 password=$PW"; do
    i=$((i + 1))
    DATABASE_URL=$u out "url$i" "$PGFAULT" url >/dev/null
done
DATABASE_URL="postgresql://app:$PW@127.0.0.1:$port/app" out url-check "$PGFAULT" url --check \
    --timeout 5000 >/dev/null
grep -q "healthy" "$O/url-check.out" || fail "url --check with the password did not pass"
POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=$port POSTGRES_DB=app POSTGRES_USER=app \
    POSTGRES_PASSWORD=$PW out url-pgvars "$PGFAULT" url >/dev/null

# --- run / check / replay with server.external in three forms ---
k=0
for ext in "host=127.0.0.1 port=$port user=app password=$PW dbname=app" \
    "postgresql://app:$PW@127.0.0.1:$port/app" \
    "postgresql://app@127.0.0.1:$port/app?password=$PW"; do
    k=$((k + 1))
    cat >"$IN/ext$k.yaml" <<EOF
name: ext$k
description: health checks against an external server
seed: 3
mode: stress
server:
  external: '$ext'
workload:
  sessions: 2
  iterations: 3
EOF
    out "explain$k" "$PGFAULT" run "$IN/ext$k.yaml" --explain >/dev/null
    PGHOST=127.0.0.1 PGPORT=$port PGUSER=app PGPASSWORD=$PW PGCONNECT_TIMEOUT=5 \
        out "run$k" timeout 120 "$PGFAULT" run "$IN/ext$k.yaml" --out "$O/run$k" --log-level debug \
        >/dev/null
    [ -f "$O/run$k/report.json" ] || fail "run $k wrote no report"
    out "check$k" "$PGFAULT" check "$O/run$k/history.jsonl" >/dev/null
    PGHOST=127.0.0.1 PGPORT=$port PGUSER=app PGPASSWORD=$PW PGCONNECT_TIMEOUT=5 \
        out "replay$k" timeout 120 "$PGFAULT" replay "$O/run$k/report.json" --out "$O/replay$k" \
        >/dev/null
    # the masked password is dropped on replay (libpq then uses PGPASSWORD)
    out "replay-explain$k" "$PGFAULT" replay "$O/run$k/report.json" --explain >/dev/null
    grep -q "masks server.external's password" "$O/replay$k.out" ||
        fail "replay $k does not say the password comes from PGPASSWORD"
    ext_line=$(grep '^  external:' "$O/replay-explain$k.out")
    case "$ext_line" in
    *'****'*) fail "replay $k still sends the mask as the password: $ext_line" ;;
    *app*) ;;
    *) fail "replay $k lost the rest of the conninfo: $ext_line" ;;
    esac
done

# the history: a server quotes the password back in a record's text (here as the name of a
# database it does not have, in every failed login's cause); the run scrubs it out of a copy
cat >"$IN/quoted.yaml" <<EOF
name: quoted
description: the password comes back inside a server error
seed: 3
mode: stress
server:
  external: 'host=127.0.0.1 port=$port user=app password=$PW dbname=$PW'
workload:
  sessions: 2
  iterations: 2
EOF
out quoted timeout 120 "$PGFAULT" run "$IN/quoted.yaml" --out "$O/quoted" >/dev/null
grep -q 'database \\"\*\*\*\*' "$O/quoted/history.jsonl" ||
    fail "the quoted database name is not in the history, masked: $(grep -m1 cause "$O/quoted/history.jsonl" | cut -c1-300)"

# stop the servers: their final output (coverage, logs) counts too
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
pids=()

# --- the grep: every output file and stream ---
nfiles=$(find "$O" -type f | wc -l)
[ "$nfiles" -ge 60 ] || fail "only $nfiles output files: the commands did not run"
if grep -rlF -- "$PW" "$O" >"$TMP/leaks"; then
    echo "the password appears in:"
    sed 's/^/  /' "$TMP/leaks"
    grep -rnF -- "$PW" "$O" | head -5 | cut -c1-300
    fail "password leaked"
fi
for frag in "Secret-7731" "Zq9-S"; do
    grep -rlF -- "$frag" "$O" >/dev/null && fail "a fragment of the password ($frag) leaked: $(grep -rlF -- "$frag" "$O" | head -3)"
done

# --- a password that is one of pgfault's own words ---
# The history's names (op "close", state "READY") are string literals: the
# scrubber once wrote its '*' into them and the run died of SIGSEGV (exit
# 139). Now a field with a secret in it is scrubbed in a copy, and the names
# the checker reads stay as they are.
W=$TMP/word
mkdir -p "$W"
printf 'app:close:password\n' >"$W/users" && chmod 600 "$W/users"
"$PGFAULT" serve --user-file "$W/users" --listen 127.0.0.1:0 >"$W/serve.out" 2>"$W/serve.err" &
pw=$!
pids+=($pw)
wait_line "$W/serve.out" '^listening' || fail "serve (password close) did not start"
wport=$(sed -n 's/^listening tcp 127\.0\.0\.1://p' "$W/serve.out")
cat >"$W/word.yaml" <<EOF
name: word
description: a password that is also an operation's name
seed: 3
mode: stress
server:
  external: 'host=127.0.0.1 port=$wport user=app password=close dbname=app'
workload:
  sessions: 2
  iterations: 3
EOF
rc=0
timeout 120 "$PGFAULT" run "$W/word.yaml" --out "$W/out" >"$W/run.out" 2>"$W/run.err" || rc=$?
[ "$rc" = 0 ] || fail "password 'close': run exit $rc, want 0: $(tail -3 "$W/run.err")"
grep -q '"op":"close"' "$W/out/history.jsonl" || fail "password 'close': the op names were masked"
kill -TERM "$pw" 2>/dev/null
wait "$pw" 2>/dev/null
pids=()

echo "ok ($nfiles output files, none with the password)"
