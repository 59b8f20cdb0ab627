"""A small health-checked service shaped like the incident's post-mortem.

aiohttp + SQLAlchemy 2.0 AsyncSession on asyncpg, configured the way the
service was: POSTGRES_HOST/PORT/DB/USER/PASSWORD (a Cloud SQL-style unix
socket directory as POSTGRES_HOST works too), PORT for its own listener.
pgfault starts it (target.service in the scenarios beside this file) and
judges it from outside through GET /healthz.

HEALTH_STYLE picks the health route:
  buggy  the post-mortem's code: the session dependency (an async generator
         yielding an AsyncSession) driven by hand with __anext__(), the query
         run as a task under asyncio.wait(timeout) that is left running on
         timeout, and gen.aclose() in `finally` -- which closes the session
         while the abandoned task is still inside _connection_for_bind():
         IllegalStateChangeError, a 500, and, when the stalled connect later
         finishes, a pooled connection that is never returned.
  postmortem  the post-mortem's fix: `async for db in get_db_dependency()`
         and asyncio.wait_for, which cancels the query and waits for it. Not
         quite fixed: leaving `async for` with `return` does not close the
         generator there; asyncio's async-generator finalizer closes the
         session later, outside the request -- meanwhile the pooled
         connection sits idle in transaction, and if the connection died
         under it the late rollback fails in a task nobody awaits.
  fixed  the same, with the generator closed in the request
         (contextlib.aclosing): what the post-mortem's fix needed.
URL_STYLE picks how the database URL is built:
  create   sqlalchemy.URL.create(...): every part passed as it is.
  fstring  the other incident: the URL assembled with an f-string; a password
           containing "%2B" is URL-decoded to "+" and the server answers 28P01.
HEALTH_TIMEOUT (seconds, default 0.5) bounds the health query.
"""
import asyncio
import contextlib
import logging
import os

import asyncpg
from aiohttp import web
from sqlalchemy import URL, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

HEALTH_STYLE = os.environ.get("HEALTH_STYLE", "fixed")
URL_STYLE = os.environ.get("URL_STYLE", "create")
HEALTH_TIMEOUT = float(os.environ.get("HEALTH_TIMEOUT", "0.5"))

log = logging.getLogger("app")


def database_url():
    host = os.environ["POSTGRES_HOST"]
    port = int(os.environ.get("POSTGRES_PORT", "5432"))
    user = os.environ["POSTGRES_USER"]
    password = os.environ["POSTGRES_PASSWORD"]
    db = os.environ["POSTGRES_DB"]
    unix = host.startswith("/")
    if URL_STYLE == "fstring":
        # The bug: text assembled into a URL is URL-decoded again by
        # make_url(), so "%2B" in the password reaches the server as "+".
        if unix:
            return f"postgresql+asyncpg://{user}:{password}@/{db}?host={host}&port={port}"
        return f"postgresql+asyncpg://{user}:{password}@{host}:{port}/{db}"
    return URL.create(
        "postgresql+asyncpg",
        username=user,
        password=password,
        host=None if unix else host,
        port=None if unix else port,
        database=db,
        query={"host": host, "port": str(port)} if unix else {},
    )


# pool_size is the number of idle connections the pool keeps between
# requests (its idle floor: the scenarios' expect.idle_floor); overflow
# connections are closed when they come back.
engine = create_async_engine(database_url(), pool_size=1, max_overflow=4)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_db_dependency():
    """The service's session dependency (FastAPI-style)."""
    db = SessionLocal()
    try:
        yield db
    finally:
        await db.close()


def db_reason(e):
    """The health reason for a database error: auth_failed for 28P01."""
    orig = getattr(e, "orig", e)
    if getattr(orig, "sqlstate", None) == "28P01" or getattr(orig, "pgcode", None) == "28P01":
        return "auth_failed"
    return "database_error"


def unhealthy(reason):
    return web.json_response({"status": "unhealthy", "reason": reason}, status=503)


def healthy():
    return web.json_response({"status": "ok"})


async def healthz_buggy(request):
    gen = get_db_dependency()
    db = await gen.__anext__()
    try:
        task = asyncio.ensure_future(db.execute(text("SELECT 1")))
        done, _ = await asyncio.wait({task}, timeout=HEALTH_TIMEOUT)
        if not done:
            return unhealthy("timeout")  # the task keeps running
        try:
            task.result()
        except (SQLAlchemyError, asyncpg.PostgresError, OSError) as e:
            log.warning("health: database error: %s", type(e).__name__)
            return unhealthy(db_reason(e))
        return healthy()
    finally:
        await gen.aclose()


async def health_query(db):
    try:
        await asyncio.wait_for(db.execute(text("SELECT 1")), HEALTH_TIMEOUT)
    except asyncio.TimeoutError:
        return unhealthy("timeout")
    except (SQLAlchemyError, asyncpg.PostgresError, OSError) as e:
        log.warning("health: database error: %s", type(e).__name__)
        return unhealthy(db_reason(e))
    return healthy()


async def healthz_postmortem(request):
    async for db in get_db_dependency():
        return await health_query(db)  # the generator is closed later, by GC


async def healthz_fixed(request):
    async with contextlib.aclosing(get_db_dependency()) as gen:
        async for db in gen:
            return await health_query(db)  # aclosing closes the session here


async def on_shutdown(app):
    await engine.dispose()


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = web.Application()
    routes = {"buggy": healthz_buggy, "postmortem": healthz_postmortem, "fixed": healthz_fixed}
    if HEALTH_STYLE not in routes:
        raise SystemExit(f"app.py: HEALTH_STYLE={HEALTH_STYLE!r}: want one of {', '.join(routes)}")
    app.router.add_get("/healthz", routes[HEALTH_STYLE])
    app.on_shutdown.append(on_shutdown)
    log.info("health style %s, url style %s, timeout %.2fs", HEALTH_STYLE, URL_STYLE, HEALTH_TIMEOUT)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None,
                access_log=None)


if __name__ == "__main__":
    main()
