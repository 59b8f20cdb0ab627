#!/usr/bin/env bash
# orm_answers.sh - `pgfault serve --answers FILE`: a service's own health
# checks answered with typed columns, rows and an error, to psql and to
# asyncpg (binary results); a row answer with delay_ms that a cancel stops;
# a bad answers file exits 2 naming file:line:col before listening.
set -euo pipefail
: "${PGFAULT:?PGFAULT must point at the pgfault binary}"
here=$(dirname "$0")
. "$here/serve_lib.bash"
PY=/usr/bin/python3
"$PY" -c 'import asyncpg' 2>/dev/null || fail "asyncpg missing (scripts/install-deps)"
command -v psql >/dev/null || fail "psql missing (scripts/install-deps)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgf-answers-XXXXXX")
serve_trap "$tmp"

# 1. errors in the file: exit 2, file:line:col, nothing listens
cat >"$tmp/bad.yaml" <<'YAML'
- statement: SELECT count(*) FROM users
  columns: [{name: count, type: int8}]
  rows: [[not-a-number]]
YAML
rc=0
"$PGFAULT" serve --listen 127.0.0.1:0 --answers "$tmp/bad.yaml" >"$tmp/bad.out" 2>"$tmp/bad.err" || rc=$?
[ "$rc" -eq 2 ] || fail "bad answers file: exit $rc, want 2"
grep -qF "$tmp/bad.yaml:3:11: 'not-a-number' is not a valid int8 value" "$tmp/bad.err" ||
    fail "bad answers file: unexpected message: $(cat "$tmp/bad.err")"
! grep -q listening "$tmp/bad.out" || fail "listened despite a bad answers file"

# 2. served
cat >"$tmp/answers.yaml" <<'YAML'
# a service's health checks
- statement: SELECT count(*) FROM users
  columns: [{name: count, type: int8}]
  rows: [[42]]
- regex: '^select 1 from pg_stat_activity'
  columns:
    - {name: "?column?", type: int4}
    - {name: healthy, type: bool}
    - {name: note, type: text}
    - {name: ratio, type: float8}
  rows:
    - [1, true, null, 0.5]
- statement: SELECT * FROM orders
  error: {sqlstate: 42P01, message: relation "orders" does not exist}
- statement: SELECT count(*) FROM slow_table
  columns: [{name: count, type: int8}]
  rows: [[7]]
  delay_ms: 60000
YAML
start_serve "$tmp" --user app:app-pw:scram-sha-256 --database appdb --answers "$tmp/answers.yaml"
grep -qxF "answers $tmp/answers.yaml (4 answers)" "$tmp/serve.out" ||
    fail "serve did not announce the answers: $(cat "$tmp/serve.out")"
export PGPASSWORD=app-pw PGSSLMODE=disable PGGSSENCMODE=disable PGCONNECT_TIMEOUT=10
psql_q() { timeout 20 psql -X -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SERVE_PORT" -U app -d appdb -c "$1"; }
[ "$(psql_q 'select COUNT(*)  from users')" = 42 ] || fail "psql: count(*) FROM users"
[ "$(psql_q 'SELECT 1 FROM pg_stat_activity')" = "1|t||0.5" ] || fail "psql: pg_stat_activity row"
out=$(timeout 20 psql -X -A -t -h 127.0.0.1 -p "$SERVE_PORT" -U app -d appdb \
    -v VERBOSITY=verbose -c 'SELECT * FROM orders' 2>&1 || true)
echo "$out" | grep -qF 'ERROR:  42P01: relation "orders" does not exist' ||
    fail "psql: the error answer: $out"
# what no answer matches keeps the built-in behaviour
[ "$(psql_q 'SELECT 2')" = 2 ] || fail "psql: SELECT 2 fell through wrongly"
echo "psql: typed rows, NULL, error answer, fall-through: ok"

unset PGPASSWORD
timeout 60 "$PY" - "$SERVE_PORT" <<'PYEOF'
import asyncio, sys
import asyncpg

async def main(port):
    c = await asyncpg.connect(host="127.0.0.1", port=port, user="app", password="app-pw",
                              database="appdb")
    try:
        # extended protocol, binary results: typed values
        assert await c.fetchval("SELECT count(*) FROM users") == 42
        r = await c.fetchrow("select 1 from pg_stat_activity where state = 'active'")
        assert tuple(r) == (1, True, None, 0.5), tuple(r)
        st = await c.prepare("SELECT count(*) FROM users")
        assert [t.name for _, t in ((a.name, a.type) for a in st.get_attributes())] == ["int8"]
        try:
            await c.fetch("SELECT * FROM orders")
            raise AssertionError("error answer not raised")
        except asyncpg.exceptions.UndefinedTableError as e:
            assert e.sqlstate == "42P01" and str(e) == 'relation "orders" does not exist', e
        # a delayed answer is a slow query: the driver's timeout cancels it
        try:
            await c.fetchval("SELECT count(*) FROM slow_table", timeout=0.5)
            raise AssertionError("the delayed answer came back at once")
        except asyncio.TimeoutError:
            pass
        assert await c.fetchval("SELECT 1") == 1  # the connection is still usable
    finally:
        await c.close()
    print("asyncpg: typed binary rows, error answer, delayed answer canceled: ok")

asyncio.run(main(int(sys.argv[1])))
PYEOF
stop_serve "$tmp"
echo PASS
