"""drivers_python.py - psycopg2 (libpq) and asyncpg (pure-Python protocol)
against a running `pgfault serve`. Usage: drivers_python.py HOST PORT SOCKDIR.

Each check prints one line; any failure raises (exit 1). Every network
operation has a timeout. Run with /usr/bin/python3 (Debian's packages)."""
import asyncio
import sys

import asyncpg
import psycopg2
import psycopg2.errors

HOST, PORT, SOCKDIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
USER, PASSWORD, DB = "scramu", "scram-pw", "appdb"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def psycopg2_checks():
    for host in (HOST, SOCKDIR):
        conn = psycopg2.connect(host=host, port=PORT, user=USER, password=PASSWORD, dbname=DB,
                                connect_timeout=10, options="")
        cur = conn.cursor()
        cur.execute("SELECT 1")
        check(cur.fetchone() == (1,), f"psycopg2 SELECT 1 via {host}")
        # psycopg2 interpolates client-side; the fake sees SELECT 41::int.
        cur.execute("SELECT %s::int AS answer", (41,))
        check(cur.fetchone() == (41,) and cur.description[0].name == "answer",
              "psycopg2 parameter")
        # psycopg2 opens a transaction implicitly (BEGIN before the first statement).
        check(conn.get_transaction_status() == 2, "psycopg2 in transaction (INTRANS)")
        try:
            cur.execute("SELEC 1")
            check(False, "syntax error raised")
        except psycopg2.errors.SyntaxError as e:
            check(e.pgcode == "42601", "psycopg2 syntax error 42601")
        check(conn.get_transaction_status() == 3, "psycopg2 failed transaction (INERROR)")
        try:
            cur.execute("SELECT 1")
            check(False, "25P02 raised")
        except psycopg2.errors.InFailedSqlTransaction as e:
            check(e.pgcode == "25P02", "psycopg2 25P02 in failed transaction")
        conn.rollback()
        cur.execute("SELECT current_database()")
        check(cur.fetchone() == (DB,), "psycopg2 after rollback")
        conn.commit()
        check(conn.get_transaction_status() == 0, "psycopg2 idle after commit")
        conn.autocommit = True
        cur.execute("SET application_name = 'psy'")
        check(conn.get_parameter_status("application_name") == "psy",
              "psycopg2 sees ParameterStatus after SET")
        check(conn.server_version == 150018, "psycopg2 server_version 150018")
        conn.close()
    try:
        psycopg2.connect(host=HOST, port=PORT, user=USER, password="wrong", dbname=DB,
                         connect_timeout=10)
        check(False, "wrong password refused")
    except psycopg2.OperationalError as e:
        want = (f'connection to server at "{HOST}", port {PORT} failed: FATAL:  password '
                f'authentication failed for user "{USER}"\n')
        check(str(e) == want, f"psycopg2 wrong password text: {str(e)!r}")


async def asyncpg_checks():
    for host in (HOST, SOCKDIR):
        conn = await asyncpg.connect(host=host, port=PORT, user=USER, password=PASSWORD,
                                     database=DB, timeout=10, ssl=False)
        check(await conn.fetchval("SELECT 1", timeout=10) == 1, f"asyncpg SELECT 1 via {host}")
        check(conn.get_server_pid() != 0, "asyncpg server pid from BackendKeyData")
        # Extended protocol: Parse/Describe, binary parameters and results.
        check(await conn.fetchval("SELECT $1::int", 41, timeout=10) == 41, "asyncpg int parameter")
        check(await conn.fetchval("SELECT $1::bigint", 2**40, timeout=10) == 2**40,
              "asyncpg bigint parameter")
        check(await conn.fetchval("SELECT $1::text", "hé", timeout=10) == "hé",
              "asyncpg text parameter")
        row = await conn.fetchrow("SELECT 42 AS answer", timeout=10)
        check(row["answer"] == 42, "asyncpg column name")
        async with conn.transaction():
            check(await conn.fetchval("SELECT 7", timeout=10) == 7, "asyncpg in transaction")
        try:
            async with conn.transaction():
                await conn.execute("SELEC 1", timeout=10)
            check(False, "syntax error raised")
        except asyncpg.PostgresSyntaxError as e:
            check(e.sqlstate == "42601", "asyncpg syntax error 42601, rolled back")
        check(not conn.is_in_transaction(), "asyncpg idle after rollback")
        # Timeout: asyncpg sends a CancelRequest. If the fake ignored it, pg_sleep(10)
        # would still run and the next query's 5 s deadline would expire.
        try:
            await conn.fetchval("SELECT pg_sleep(10)", timeout=0.5)
            check(False, "pg_sleep timed out")
        except asyncio.TimeoutError:
            pass
        check(await conn.fetchval("SELECT 5", timeout=5) == 5, "asyncpg timeout -> cancel")
        # Cancelling the task cancels the query the same way.
        task = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(10)"))
        await asyncio.sleep(0.2)  # let it start; whether or not it did, cancel must work
        task.cancel()
        try:
            await asyncio.wait_for(task, 10)
        except asyncio.CancelledError:
            pass
        check(await conn.fetchval("SELECT 6", timeout=5) == 6, "asyncpg task cancel -> cancel")
        await asyncio.wait_for(conn.close(), 10)
    try:
        await asyncpg.connect(host=HOST, port=PORT, user=USER, password="wrong", database=DB,
                              timeout=10, ssl=False)
        check(False, "wrong password refused")
    except asyncpg.InvalidPasswordError as e:
        check(e.sqlstate == "28P01", "asyncpg wrong password 28P01")
        check(str(e) == f'password authentication failed for user "{USER}"',
              f"asyncpg wrong password text: {e}")


psycopg2_checks()
asyncio.run(asyncio.wait_for(asyncpg_checks(), 120))
print("PASS")
