# orm_lib.bash - helpers for the orm_*.sh scripts (sourced, not a test):
# one real PostgreSQL 15 (scripts/pg-reference) and one `pgfault serve`
# with the same role and database, then the same client script against
# both, requiring the same output. Everything started here is stopped by
# the EXIT trap (by pid / pg_ctl, never by name).
. "$(dirname "${BASH_SOURCE[0]}")/serve_lib.bash"
: "${PGFAULT:?PGFAULT must point at the pgfault binary}"
: "${PGF_SRC:?PGF_SRC must point at the source tree}"

ORM_USER=pgf_scram
ORM_PASS=pgf_scram_pw # pg-reference's SCRAM role; a test password, never a secret
ORM_DB=pgf

orm_setup() {
    ORM_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-orm-XXXXXX")
    chmod 0711 "$ORM_TMP" # the reference server runs as the postgres user
    ORM_REF=
    trap orm_cleanup EXIT
    "$PGF_SRC/scripts/pg-reference" start "$ORM_TMP/ref" >"$ORM_TMP/ref.out" ||
        fail "cannot start the reference PostgreSQL (scripts/install-deps installs postgresql-15)"
    ORM_REF=1
    REF_PORT=$(awk '$1 == "port" {print $2}' "$ORM_TMP/ref.out")
    mkdir "$ORM_TMP/fake"
    start_serve "$ORM_TMP/fake" --user "$ORM_USER:$ORM_PASS:scram-sha-256" --database "$ORM_DB" "$@"
    unset PGPASSWORD PGSERVICE PGOPTIONS PGSSLMODE PGCONNECT_TIMEOUT PGAPPNAME || true
    export PGSSLMODE=disable PGGSSENCMODE=disable
}

orm_cleanup() {
    if [ -n "${ORM_REF:-}" ]; then "$PGF_SRC/scripts/pg-reference" stop "$ORM_TMP/ref" || true; fi
    if [ -n "${SERVE_PID:-}" ]; then kill -9 "$SERVE_PID" 2>/dev/null || true; fi
    rm -rf "$ORM_TMP"
}

# orm_args PORT ARGS...: ARGS with the word @CONN@ replaced by
# HOST PORT USER PASSWORD DB (into the ORM_ARGS array).
orm_args() {
    local port=$1 a
    shift
    ORM_ARGS=()
    for a in "$@"; do
        if [ "$a" = @CONN@ ]; then
            ORM_ARGS+=(127.0.0.1 "$port" "$ORM_USER" "$ORM_PASS" "$ORM_DB")
        else
            ORM_ARGS+=("$a")
        fi
    done
}

# orm_both NAME CMD...: run CMD (with @CONN@ expanded) against PostgreSQL and
# then the fake (bounded); both must pass with identical output.
orm_both() {
    local name=$1
    shift
    orm_args "$REF_PORT" "$@"
    timeout 120 "${ORM_ARGS[@]}" >"$ORM_TMP/$name.real" 2>&1 ||
        fail "$name against PostgreSQL 15 failed: $(tail -n 8 "$ORM_TMP/$name.real")"
    orm_args "$SERVE_PORT" "$@"
    timeout 120 "${ORM_ARGS[@]}" >"$ORM_TMP/$name.fake" 2>&1 ||
        fail "$name against pgfault serve failed: $(tail -n 8 "$ORM_TMP/$name.fake")"
    diff -u --label postgresql "$ORM_TMP/$name.real" --label pgfault "$ORM_TMP/$name.fake" ||
        fail "$name: the fake and PostgreSQL gave different results (above)"
    local n
    n=$(grep -c '^ok ' "$ORM_TMP/$name.fake" || true)
    [ "$n" -gt 0 ] || fail "$name: no checks ran: $(cat "$ORM_TMP/$name.fake")"
    echo "$name: $n checks pass on PostgreSQL 15 and on pgfault"
}
