"""orm_clients.py - Python application stacks connecting the way a new user
would (default options) and running SELECT 1 through an engine, a
transaction and an ORM session (AsyncSession for the async drivers).

    python orm_clients.py HOST PORT USER PASSWORD DBNAME STACK...

STACK is one of: sa-asyncpg sa-psycopg2 sa-psycopg sa-psycopg-async
(whichever SQLAlchemy this interpreter imports: 2.0 in scripts/python-env's
venv, Debian's 1.4 in /usr/bin/python3), asyncpg-introspection (asyncpg's
own type introspection, what it runs on meeting a type without a built-in
codec), asyncpg-pool (asyncpg's own pool: every release runs its reset query,
a serializable read-only transaction, a statement timeout's cancel),
psycopg-pool (psycopg_pool with a statement_timeout in the startup options,
isolation level and read-only attributes, server-side prepared statements),
psycopg-typeinfo (psycopg 3's TypeInfo.fetch), or all-2.0 / all-1.4.

The same script runs against a real PostgreSQL 15 (scripts/capture-introspection
records what it sends there) and against `pgfault serve` (tests/e2e/orm_python.sh).
Prints one "ok STACK what" line per check; any failure raises (exit 1).
The password is never printed.
"""
import asyncio
import sys

import sqlalchemy
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

SA2 = sqlalchemy.__version__.startswith("2.")
ALL = {
    "all-2.0": ["sa-asyncpg", "sa-psycopg2", "sa-psycopg", "sa-psycopg-async",
                "asyncpg-introspection", "asyncpg-pool", "psycopg-pool", "psycopg-typeinfo"],
    "all-1.4": ["sa-psycopg2"],
}


def url(driver, a):
    host, port, user, password, db = a
    return sqlalchemy.engine.URL.create("postgresql+" + driver, username=user, password=password,
                                        host=host, port=int(port), database=db)


def ok(stack, what):
    print("ok", stack, what, flush=True)


def check_one(value, stack, what):
    if value != 1:
        raise AssertionError("%s %s: SELECT 1 gave %r" % (stack, what, value))
    ok(stack, what)


def sync_stack(stack, driver, a):
    eng = create_engine(url(driver, a))
    try:
        with eng.connect() as conn:
            check_one(conn.execute(text("SELECT 1")).scalar(), stack, "engine")
        with eng.begin() as conn:
            check_one(conn.execute(text("SELECT 1")).scalar(), stack, "transaction")
        with Session(eng) as s:
            check_one(s.execute(text("SELECT 1")).scalar(), stack, "session")
    finally:
        eng.dispose()


async def async_stack(stack, driver, a):
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    eng = create_async_engine(url(driver, a))
    try:
        async with eng.connect() as conn:
            check_one((await conn.execute(text("SELECT 1"))).scalar(), stack, "engine")
        async with eng.begin() as conn:
            check_one((await conn.execute(text("SELECT 1"))).scalar(), stack, "transaction")
        async with AsyncSession(eng) as s:
            check_one((await s.execute(text("SELECT 1"))).scalar(), stack, "asyncsession")
        async with AsyncSession(eng) as s:
            async with s.begin():
                check_one((await s.execute(text("SELECT 1"))).scalar(), stack,
                          "asyncsession-transaction")
    finally:
        await eng.dispose()


async def asyncpg_introspection(a):
    import asyncpg
    host, port, user, password, db = a
    conn = await asyncpg.connect(host=host, port=int(port), user=user, password=password,
                                 database=db)
    try:
        # int4[] (1007) and int4range (3904) have no built-in asyncpg codec
        # entry: this is the query asyncpg sends the first time it meets them.
        for oids, want in (([1007], {"_int4", "int4"}), ([3904], {"int4range", "int4"})):
            rows, _ = await conn._introspect_types(oids, 10)
            names = {r["name"] for r in rows}
            if names != want:
                raise AssertionError("asyncpg introspection of %s gave %s" % (oids, names))
        ok("asyncpg-introspection", "types")
        if await conn.fetchval("SELECT 1") != 1:
            raise AssertionError("asyncpg SELECT 1")
        ok("asyncpg-introspection", "select1")
    finally:
        await conn.close()


async def asyncpg_pool(a):
    import asyncpg
    host, port, user, password, db = a
    pool = await asyncpg.create_pool(host=host, port=int(port), user=user, password=password,
                                     database=db, min_size=1, max_size=2)
    try:
        # each release runs asyncpg's reset query (pg_advisory_unlock_all(),
        # CLOSE ALL, UNLISTEN *, RESET ALL) on the connection
        for i in range(3):
            async with pool.acquire() as conn:
                if await conn.fetchval("SELECT 1") != 1:
                    raise AssertionError("asyncpg pool SELECT 1")
        ok("asyncpg-pool", "acquire-release x3")
        async with pool.acquire() as conn:
            async with conn.transaction(isolation="serializable", readonly=True):
                iso = await conn.fetchval("SHOW transaction_isolation")
                ro = await conn.fetchval("SHOW transaction_read_only")
            ok("asyncpg-pool", "transaction %s read_only=%s" % (iso, ro))
            try:
                await conn.execute("SELECT pg_sleep(10)", timeout=0.3)
                raise AssertionError("asyncpg: pg_sleep(10) finished within a 0.3 s timeout")
            except asyncio.TimeoutError:
                pass
            ok("asyncpg-pool", "timeout %s" % (await conn.fetchval("SELECT 1"),))
    finally:
        await asyncio.wait_for(pool.close(), 10)


def psycopg_pool_stack(a):
    import psycopg
    import psycopg_pool
    host, port, user, password, db = a
    kwargs = {"host": host, "port": port, "user": user, "password": password, "dbname": db,
              "options": "-c statement_timeout=300"}
    with psycopg_pool.ConnectionPool("", kwargs=kwargs, min_size=1, max_size=2, timeout=20) as pool:
        pool.wait(timeout=20)
        for _ in range(3):
            with pool.connection() as conn:
                if conn.execute("SELECT 1").fetchone()[0] != 1:
                    raise AssertionError("psycopg_pool SELECT 1")
        ok("psycopg-pool", "connection x3")
        with pool.connection() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            iso = conn.execute("SHOW transaction_isolation").fetchone()[0]
            ro = conn.execute("SHOW transaction_read_only").fetchone()[0]
            ok("psycopg-pool", "attributes %s read_only=%s" % (iso, ro))
        for i in range(7):  # prepared on the server from the 5th execution
            with pool.connection() as conn:
                if conn.execute("SELECT %s::int", (i,), prepare=True).fetchone()[0] != i:
                    raise AssertionError("psycopg_pool prepared statement")
        ok("psycopg-pool", "prepared x7")
        with pool.connection() as conn:
            ok("psycopg-pool", "statement_timeout %s" % conn.execute("SHOW statement_timeout").fetchone()[0])
            try:
                conn.execute("SELECT pg_sleep(10)")
                raise AssertionError("pg_sleep(10) outlived statement_timeout=300")
            except psycopg.errors.QueryCanceled as e:
                ok("psycopg-pool", "timeout %s: %s" % (e.sqlstate, e))


def psycopg_typeinfo(a):
    import psycopg
    from psycopg.types import TypeInfo
    host, port, user, password, db = a
    with psycopg.connect(host=host, port=port, user=user, password=password, dbname=db) as conn:
        for name, oid in (("json", 114), ("jsonb", 3802), ("int4range", 3904)):
            ti = TypeInfo.fetch(conn, name)
            if ti is None or ti.oid != oid:
                raise AssertionError("TypeInfo.fetch(%s) gave %r" % (name, ti))
        if TypeInfo.fetch(conn, "hstore") is not None:
            raise AssertionError("TypeInfo.fetch(hstore) found hstore, which is not installed")
        ok("psycopg-typeinfo", "fetch")


def main():
    a = sys.argv[1:6]
    stacks = []
    for s in sys.argv[6:]:
        stacks += ALL.get(s, [s])
    for stack in stacks:
        if stack == "sa-psycopg2":
            sync_stack(stack, "psycopg2", a)
        elif stack == "sa-psycopg":
            sync_stack(stack, "psycopg", a)
        elif stack == "sa-asyncpg":
            asyncio.run(async_stack(stack, "asyncpg", a))
        elif stack == "sa-psycopg-async":
            asyncio.run(async_stack(stack, "psycopg_async", a))
        elif stack == "asyncpg-introspection":
            asyncio.run(asyncpg_introspection(a))
        elif stack == "asyncpg-pool":
            asyncio.run(asyncpg_pool(a))
        elif stack == "psycopg-pool":
            psycopg_pool_stack(a)
        elif stack == "psycopg-typeinfo":
            psycopg_typeinfo(a)
        else:
            raise SystemExit("orm_clients.py: unknown stack %r" % stack)
    print("done", len(stacks), "stacks with SQLAlchemy", sqlalchemy.__version__)


if __name__ == "__main__":
    main()
