#!/usr/bin/env bash
# orm_java.sh - pgjdbc (Debian's libpostgresql-jdbc-java) with default
# options against a real PostgreSQL 15 and against `pgfault serve`: connect,
# SELECT 1, SELECT 1 in a transaction, the server version from the metadata,
# and what pools and frameworks do to a connection (isolation levels,
# read-only transactions, isValid, a server-side prepared statement, a query
# timeout's cancel): tests/clients/java/Connect.java.
# A missing JDK or driver FAILS.
set -euo pipefail
here=$(dirname "$0")
. "$here/orm_lib.bash"
jar=/usr/share/java/postgresql.jar
[ -f "$jar" ] || fail "$jar missing (scripts/install-deps installs libpostgresql-jdbc-java)"
command -v java >/dev/null || fail "java not found (scripts/install-deps installs openjdk-17-jdk-headless)"
orm_setup
orm_both pgjdbc java -cp "$jar" "$here/../clients/java/Connect.java" @CONN@
stop_serve "$ORM_TMP/fake"
echo PASS
