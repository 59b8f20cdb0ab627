"""A pgfault adapter for SQLAlchemy 2.0's AsyncSession (docs/adapter-protocol.md).

pgfault starts this process with POSTGRES_* pointing at its fake server and
sends JSON lines on stdin: {"op": "open"|"check"|"close", "id": N,
"session": S} and finally {"op": "quit"}. For each session S this adapter
keeps one AsyncSession on one shared AsyncEngine (asyncpg) and answers
{"type": "ok"|"fail", "id": N, ...}, streaming every state change of the
session as {"type": "transition", ...} in the order it happens. The states
are SQLAlchemy's SessionTransactionState (spec.json beside this file), and
SQLAlchemy's own refusals (IllegalStateChangeError, InvalidRequestError) are
named in the spec as "refused", so the checker knows they changed nothing.

Each request runs as its own task, so a racer's close() really runs while
the session's open is still inside _connection_for_bind() -- the incident.

ADAPTER_MODE=swallow is a broken variant: it catches the exception close()
raises and answers ok anyway (what `try: await session.close() except
Exception: pass` does to a caller); pgfault must catch it.
"""
import asyncio
import json
import os
import sys

from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

MODE = os.environ.get("ADAPTER_MODE", "honest")


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def engine_url():
    host = os.environ["POSTGRES_HOST"]
    unix = host.startswith("/")
    return URL.create(
        "postgresql+asyncpg",
        username=os.environ["POSTGRES_USER"],
        password=os.environ["POSTGRES_PASSWORD"],
        host=None if unix else host,
        port=None if unix else int(os.environ["POSTGRES_PORT"]),
        database=os.environ["POSTGRES_DB"],
        query={"host": host, "port": os.environ["POSTGRES_PORT"]} if unix else {},
    )


def reason_of(e):
    orig = getattr(e, "orig", e)
    if getattr(orig, "sqlstate", None) == "28P01":
        return "auth_failed"
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    return "connection_lost"


class Sess:
    def __init__(self, sid, engine):
        self.sid = sid
        self.db = AsyncSession(engine)
        self.state = "NEW"

    def move(self, to, op, cause=None):
        emit({"type": "transition", "session": self.sid, "op": op, "from": self.state, "to": to,
              **({"cause": cause} if cause else {})})
        self.state = to


closed = set()  # sessions closed and forgotten: every later call is refused


async def handle(sessions, engine, req):
    op, rid, sid = req["op"], req["id"], req.get("session")
    if sid in closed:
        emit({"type": "invoke", "id": rid, "session": sid, "op": op})
        return emit({"type": "fail", "id": rid, "session": sid, "op": op,
                     "error": "InvalidRequestError", "message": f"session {sid} is closed"})
    s = sessions.get(sid)
    if s is None:
        s = sessions[sid] = Sess(sid, engine)
    # the call starts now: in order with this session's transitions
    emit({"type": "invoke", "id": rid, "session": sid, "op": op})
    try:
        if op == "open":
            if s.state != "NEW":
                raise_refused(f"open on a session in {s.state}")
            s.move("PROVISIONING_CONNECTION", "open")
            try:
                await s.db.connection()
            except Exception as e:
                s.move("DEACTIVE", "open", type(e).__name__)
                return emit({"type": "fail", "id": rid, "session": sid, "op": op,
                             "error": type(e).__name__, "message": str(e)[:200],
                             "reason": reason_of(e)})
            s.move("ACTIVE", "open")
        elif op == "check":
            if s.state != "ACTIVE":
                raise_refused(f"check on a session in {s.state}")
            s.move("EXECUTING", "check")
            try:
                await s.db.execute(text("SELECT 1"))
            except Exception as e:
                s.move("DEACTIVE", "check", type(e).__name__)
                return emit({"type": "fail", "id": rid, "session": sid, "op": op,
                             "error": type(e).__name__, "message": str(e)[:200],
                             "reason": reason_of(e)})
            s.move("ACTIVE", "check")
        elif op == "close":
            try:
                await s.db.close()
            except Exception as e:
                if MODE == "swallow":
                    return emit({"type": "ok", "id": rid, "session": sid, "op": op})
                raise
            s.move("CLOSED", "close")  # also from EXECUTING: SQLAlchemy accepted it
            closed.add(sid)
            sessions.pop(sid, None)
        else:
            return emit({"type": "fail", "id": rid, "session": sid, "op": op,
                         "error": "InvalidRequestError", "message": f"unknown op {op}"})
        emit({"type": "ok", "id": rid, "session": sid, "op": op})
    except Exception as e:
        # SQLAlchemy refused the call (IllegalStateChangeError,
        # InvalidRequestError): nothing changed, the spec names them "refused".
        emit({"type": "fail", "id": rid, "session": sid, "op": op, "error": type(e).__name__,
              "message": str(e)[:300]})


def raise_refused(msg):
    from sqlalchemy.exc import InvalidRequestError
    raise InvalidRequestError(msg)


async def main():
    engine = create_async_engine(engine_url(), pool_size=5, max_overflow=10)
    sessions = {}
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks = set()
    emit({"type": "ready"})
    while True:
        line = await reader.readline()
        if not line:
            break
        req = json.loads(line)
        if req["op"] == "quit":
            break
        t = asyncio.ensure_future(handle(sessions, engine, req))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    for s in list(sessions.values()):
        try:
            await s.db.close()
        except Exception:
            pass
    await engine.dispose()


asyncio.run(main())
