#!/usr/bin/env bash
# orm_go.sh - Go's PostgreSQL drivers from Debian (pgx v4 and its pool,
# lib/pq through database/sql) against a real PostgreSQL 15 and against
# `pgfault serve`, requiring the same output: tests/clients/go/pgfclients.
# Built in GOPATH mode against Debian's /usr/share/gocode (no module proxy:
# these machines reach Debian and npm only; a cold build takes ~6 s, in a
# cache inside the test's temp dir). A missing Go toolchain or
# driver FAILS (scripts/install-deps installs them).
set -euo pipefail
here=$(dirname "$0")
. "$here/orm_lib.bash"
command -v go >/dev/null || fail "go not found (scripts/install-deps installs golang-go)"
for d in github.com/jackc/pgx/v4 github.com/lib/pq; do
    [ -d "/usr/share/gocode/src/$d" ] ||
        fail "/usr/share/gocode/src/$d missing (scripts/install-deps installs golang-github-jackc-pgx-v4-dev, golang-github-lib-pq-dev)"
done
orm_setup
mkdir -p "$ORM_TMP/gopath/src"
cp -r "$here/../clients/go/pgfclients" "$ORM_TMP/gopath/src/"
(cd "$ORM_TMP/gopath/src/pgfclients" &&
    GOPATH="$ORM_TMP/gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOCACHE="$ORM_TMP/gocache" \
        timeout 300 go build -o "$ORM_TMP/pgfclients" .) >"$ORM_TMP/build.log" 2>&1 ||
    fail "go build failed: $(tail -n 20 "$ORM_TMP/build.log")"
orm_both go "$ORM_TMP/pgfclients" @CONN@
stop_serve "$ORM_TMP/fake"
echo PASS
