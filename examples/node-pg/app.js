// A health endpoint on pg.Pool, configured from POSTGRES_* (pgfault passes the
// fake server's coordinates and a free PORT). GET /healthz checks out a
// client, runs SELECT 1 and gives the client back.
//
// RELEASE_STYLE picks how the client is given back:
//   once    release(err) on failure (the pool discards the broken client),
//           release() on success: exactly once, whatever happened.
//   double  the bug: the failure path releases in `catch` and again in
//           `finally`. pg-pool throws "Release called on client which has
//           already been released to the pool." -- a 500 with a stack trace,
//           only when the database misbehaves.
'use strict';
const http = require('http');
const { Pool } = require('pg');

const STYLE = process.env.RELEASE_STYLE || 'once';
const TIMEOUT_MS = Number(process.env.HEALTH_TIMEOUT_MS || 1000);

const pool = new Pool({
  host: process.env.POSTGRES_HOST,
  port: Number(process.env.POSTGRES_PORT || 5432),
  database: process.env.POSTGRES_DB,
  user: process.env.POSTGRES_USER,
  password: process.env.POSTGRES_PASSWORD,
  max: 2, // also the pool's idle floor: idle clients are kept until idleTimeoutMillis
  idleTimeoutMillis: 60000,
  connectionTimeoutMillis: TIMEOUT_MS,
  query_timeout: TIMEOUT_MS,
});
// An idle client whose connection dies must not crash the process.
pool.on('error', (err) => console.log(`pool: idle client error: ${err.message}`));

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function healthz(res) {
  let client;
  try {
    client = await pool.connect();
  } catch (err) {
    // 28P01 (wrong password, or a rotated one) is not an outage: say so,
    // as the session manager's auth_failed does.
    const reason = err.code === '28P01' ? 'auth_failed' : /timeout/i.test(err.message) ? 'timeout' : 'unreachable';
    return reply(res, 503, { status: 'unhealthy', reason });
  }
  // A checked-out client whose connection is reset emits 'error' besides
  // failing its query; without a listener Node kills the process (pgfault's
  // first run of this example caught exactly that: service_died).
  const onError = (err) => console.log(`health: client error: ${err.message}`);
  client.on('error', onError);
  if (STYLE === 'double') {
    try {
      await client.query('SELECT 1');
      reply(res, 200, { status: 'ok' });
    } catch (err) {
      client.release(err);
      reply(res, 503, { status: 'unhealthy', reason: 'connection_lost' });
    } finally {
      client.removeListener('error', onError);
      client.release(); // the bug: the catch path already released it
    }
    return;
  }
  let failure;
  try {
    await client.query('SELECT 1');
  } catch (err) {
    failure = err;
  } finally {
    client.removeListener('error', onError);
    client.release(failure);
  }
  if (failure) return reply(res, 503, { status: 'unhealthy', reason: 'connection_lost' });
  reply(res, 200, { status: 'ok' });
}

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' || req.url !== '/healthz') return reply(res, 404, { error: 'not found' });
  healthz(res).catch((err) => {
    // what an express error handler does: log the stack, answer 500
    console.error(err.stack);
    if (!res.headersSent) reply(res, 500, { error: 'internal' });
  });
});

server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log(`node-pg example (release ${STYLE}) on port ${process.env.PORT}`);
});
process.on('SIGTERM', () => {
  server.close();
  pool.end().then(() => process.exit(0));
});
