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
        # where it is stuck, thread by thread (state, kernel wait channel),
        # so that a failure seen once in CI says more than "still running"
        local t where=""
        for t in /proc/"$pid"/task/*; do
            where="$where $(cat "$t/comm" 2>/dev/null):$(awk '{print $3}' "$t/stat" 2>/dev/null)/$(cat "$t/wchan" 2>/dev/null)"
        done
        fail "still running $(($2 / 10)) s after SIG$1 (threads, name:state/wchan:$where)"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid"
    rc=$?
    pid=
}
