# sqla_compat.bash - sourced by the example tests that run SQLAlchemy on asyncpg
# against the fake server. sqla_compat PY TMPDIR: start `pgfault serve` and
# connect an unmodified SQLAlchemy AsyncEngine (the fake answers the dialect's
# pg_type introspection: docs/introspection.md). Any failure FAILS the test,
# with the client's last lines: the examples below would fail less clearly.
sqla_compat() {
    local py=$1 dir=$2 pid port i
    "$PGFAULT" serve --listen 127.0.0.1:0 --user app:pw:scram-sha-256 >"$dir/compat.out" 2>&1 &
    pid=$!
    for i in $(seq 200); do
        grep -q '^listening tcp ' "$dir/compat.out" 2>/dev/null && break
        sleep 0.05 # polling while it starts, not a timing assertion
    done
    port=$(sed -n 's/^listening tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/compat.out")
    local rc=0
    if [ -n "$port" ]; then
        timeout 30 "$py" - "$port" >"$dir/compat.py.log" 2>&1 <<'PY' || rc=$?
import asyncio, sys
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import create_async_engine
async def main():
    e = create_async_engine(URL.create("postgresql+asyncpg", username="app", password="pw",
                                       host="127.0.0.1", port=int(sys.argv[1]), database="app"))
    async with e.connect() as c:
        assert (await c.execute(text("SELECT 1"))).scalar() == 1
    await e.dispose()
asyncio.run(main())
PY
    else
        rc=99
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ "$rc" = 0 ]; then
        return 0
    fi
    echo "FAIL: SQLAlchemy could not connect to pgfault serve:"
    tail -5 "$dir/compat.py.log"
    return 1
}
