# serve_lib.bash - helpers shared by the e2e scripts that run `pgfault serve`
# (sourced, not a test: ctest only runs *.sh). Everything started here is
# killed by the EXIT trap the caller installs with serve_trap.

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# start_serve DIR ARGS...: start $PGFAULT serve on 127.0.0.1:0 and DIR as
# unix-socket dir; sets SERVE_PID, SERVE_PORT, SERVE_SOCK. Bounded wait.
start_serve() {
    local dir=$1
    shift
    "$PGFAULT" serve --listen 127.0.0.1:0 --unix-socket-dir "$dir" "$@" \
        >"$dir/serve.out" 2>"$dir/serve.err" &
    SERVE_PID=$!
    local i
    for i in $(seq 200); do
        grep -q '^listening unix ' "$dir/serve.out" 2>/dev/null && break
        kill -0 "$SERVE_PID" 2>/dev/null || fail "pgfault serve exited early: $(cat "$dir/serve.err")"
        sleep 0.05 # polling interval while it starts, not a timing assertion
    done
    grep -q '^listening unix ' "$dir/serve.out" || fail "pgfault serve did not print its listeners in 10 s"
    SERVE_PORT=$(sed -n 's/^listening tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/serve.out")
    SERVE_SOCK=$(sed -n 's/^listening unix \(.*\)$/\1/p' "$dir/serve.out")
    [ -n "$SERVE_PORT" ] || fail "no 'listening tcp' line in: $(cat "$dir/serve.out")"
    [ "$SERVE_SOCK" = "$dir/.s.PGSQL.$SERVE_PORT" ] || fail "unexpected unix socket path '$SERVE_SOCK'"
}

# stop_serve: SIGTERM, bounded wait; fails unless it exits 0.
stop_serve() {
    kill -TERM "$SERVE_PID"
    local i
    for i in $(seq 200); do
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$SERVE_PID" 2>/dev/null; then
        kill -9 "$SERVE_PID"
        fail "pgfault serve did not exit within 10 s of SIGTERM"
    fi
    local rc=0
    wait "$SERVE_PID" || rc=$?
    SERVE_PID=
    [ "$rc" -eq 0 ] || fail "pgfault serve exited $rc after SIGTERM: $(cat "$1/serve.err" 2>/dev/null)"
}

# serve_trap DIR: kill what we started and remove DIR on exit.
serve_trap() {
    SERVE_TMP=$1
    trap 'if [ -n "${SERVE_PID:-}" ]; then kill -9 "$SERVE_PID" 2>/dev/null || true; fi; rm -rf "$SERVE_TMP"' EXIT
}
