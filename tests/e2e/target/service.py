"""A deliberately simple service for the HTTP-target tests (tests/e2e/target_http.sh).

GET /healthz connects with asyncpg (POSTGRES_* from pgfault), runs SELECT 1
under a 0.5 s timeout that cancels, and closes. MODE makes it misbehave in
exactly one way, so each of pgfault's target checks is seen to fail:
  ok     correct: 200, or 503 {"reason": ...} when the database fails
  trace  a database error escapes: traceback on stderr and a 500
  leak   never closes its connections
  die    exits (status 3) at the 5th request
  status answers 404 instead of 503 when unhealthy
  stubborn ignores SIGTERM (pgfault must SIGKILL it after the grace period)
"""
import asyncio
import os
import signal
import sys
import traceback

import asyncpg
from aiohttp import web

MODE = os.environ.get("MODE", "ok")
kept = []
count = 0


async def connect():
    host = os.environ["POSTGRES_HOST"]
    return await asyncpg.connect(host=host, port=int(os.environ["POSTGRES_PORT"]),
                                 user=os.environ["POSTGRES_USER"],
                                 password=os.environ["POSTGRES_PASSWORD"],
                                 database=os.environ["POSTGRES_DB"], ssl=False)



async def check():
    conn = await connect()
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        if MODE == "leak":
            kept.append(conn)
        else:
            await conn.close()


async def healthz(request):
    global count
    count += 1
    if MODE == "die" and count == 5:
        print("dying on purpose", flush=True)
        os._exit(3)
    try:
        await asyncio.wait_for(check(), 0.5)
    except asyncio.TimeoutError:
        return web.json_response({"status": "unhealthy", "reason": "timeout"},
                                 status=404 if MODE == "status" else 503)
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as e:
        if MODE == "trace":
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            return web.Response(status=500, text="internal error")
        return web.json_response({"status": "unhealthy", "reason": type(e).__name__},
                                 status=404 if MODE == "status" else 503)
    return web.json_response({"status": "ok"})


if MODE == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
app = web.Application()
app.router.add_get("/healthz", healthz)
print(f"mode {MODE} on port {os.environ['PORT']}; database {os.environ['DATABASE_URL'].split('@')[-1]}",
      flush=True)
web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None, access_log=None,
            handle_signals=MODE != "stubborn")
