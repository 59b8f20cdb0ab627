#!/usr/bin/env bash
# orm_python.sh - Python application stacks with default options against a
# real PostgreSQL 15 and against `pgfault serve`, same script, same output:
# SQLAlchemy 2.0.52 (scripts/python-env's venv) with asyncpg, psycopg2,
# psycopg 3 sync and async (engine, transaction, Session/AsyncSession,
# SELECT 1); asyncpg's own type introspection and its pool (reset query on
# release, transaction options, a timeout's cancel); psycopg_pool (startup
# options' statement_timeout, attributes, prepared statements); psycopg's TypeInfo.fetch
# (hstore absent, as on a server without the extension); Debian's
# SQLAlchemy 1.4 with psycopg2. A missing driver or SQLAlchemy FAILS.
set -euo pipefail
here=$(dirname "$0")
. "$here/orm_lib.bash"
PY2=$("$PGF_SRC/scripts/python-env" "${PGF_BUILD:-$PGF_SRC/build}/pyenv") ||
    fail "scripts/python-env could not make the SQLAlchemy 2.0 venv"
"$PY2" -c 'import sqlalchemy, asyncpg, psycopg, psycopg2, psycopg_pool, greenlet, sys; sys.exit(not sqlalchemy.__version__.startswith("2."))' ||
    fail "the venv lacks SQLAlchemy 2.0 or a driver (scripts/install-deps, scripts/python-env)"
/usr/bin/python3 -c 'import sqlalchemy, psycopg2, sys; sys.exit(not sqlalchemy.__version__.startswith("1.4"))' ||
    fail "Debian's SQLAlchemy 1.4 / psycopg2 missing for /usr/bin/python3 (scripts/install-deps)"
orm_setup
client=$here/../clients/python/orm_clients.py
orm_both sqlalchemy2 "$PY2" "$client" @CONN@ all-2.0
orm_both sqlalchemy14 /usr/bin/python3 "$client" @CONN@ all-1.4
stop_serve "$ORM_TMP/fake"
echo PASS
