# proc_lib.bash - stop a process an e2e test started, by its PID, bounded.
# The caller defines fail() and keeps the PID in $pid.

# stop_pid SIGNAL TENTHS: send SIGNAL to $pid (it may have exited already),
# wait up to TENTHS/10 s for it to end; sets rc to its exit code and clears
# pid. Still running then: fail, naming the wait (and SIGKILL, for a fail()
# that does not exit).
stop_pid() {
    kill "-$1" "$pid" 2>/dev/null
    for _ in $(seq 1 "$2"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "still running $(($2 / 10)) s after SIG$1"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid"
    rc=$?
    pid=
}
