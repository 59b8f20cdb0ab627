# TEST-ONLY stopgap, loaded through PYTHONPATH by tests/e2e/target/sqla_compat.bash
# only when the fake server cannot yet answer the pg_type introspection that
# SQLAlchemy's asyncpg dialect runs on every new connection (issue 13: until
# the fake answers it, such an engine cannot connect at all). It skips the
# dialect's json/jsonb codec setup, nothing else. The examples themselves are
# unmodified; when the fake answers the introspection this file is not used.
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg


async def _skip_codec_setup(self, conn):
    return None


PGDialect_asyncpg.setup_asyncpg_json_codec = _skip_codec_setup
PGDialect_asyncpg.setup_asyncpg_jsonb_codec = _skip_codec_setup
