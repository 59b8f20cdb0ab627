// clients.js - node-postgres (pg.Pool), knex, Sequelize, postgres.js and
// TypeORM connecting with default options and running SELECT 1 (Sequelize:
// authenticate(), which is its connect-time type query plus SELECT 1+1, then
// a query in a transaction; postgres.js: its connect-time array-type query,
// a parameter, a serializable read-only transaction; TypeORM: initialize()
// and a serializable transaction).
//
//   node clients.js HOST PORT USER PASSWORD DBNAME [STACK...]
//
// STACK: pg-pool knex sequelize postgres-js typeorm (default: all). The same script runs against
// a real PostgreSQL 15 (scripts/capture-introspection) and against `pgfault
// serve` (tests/e2e/orm_node.sh). Prints "ok STACK what" per check; any
// failure exits 1. The password is never printed.
'use strict';
const [host, port, user, password, database, ...rest] = process.argv.slice(2);
const stacks = rest.length ? rest : ['pg-pool', 'knex', 'sequelize', 'postgres-js', 'typeorm'];
const conn = { host, port: Number(port), user, password, database };

function ok(stack, what) {
  console.log(`ok ${stack} ${what}`);
}

function expectOne(v, stack, what) {
  if (Number(v) !== 1) throw new Error(`${stack} ${what}: SELECT 1 gave ${JSON.stringify(v)}`);
  ok(stack, what);
}

async function pgPool() {
  const { Pool } = require('pg');
  const pool = new Pool(conn);
  try {
    const r = await pool.query('SELECT 1 AS one');
    expectOne(r.rows[0].one, 'pg-pool', 'query');
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      expectOne((await c.query('SELECT 1 AS one')).rows[0].one, 'pg-pool', 'transaction');
      await c.query('COMMIT');
    } finally {
      c.release();
    }
  } finally {
    await pool.end();
  }
}

async function knexStack() {
  const knex = require('knex')({ client: 'pg', connection: conn });
  try {
    const r = await knex.raw('SELECT 1 AS one');
    expectOne(r.rows[0].one, 'knex', 'raw');
    await knex.transaction(async (trx) => {
      expectOne((await trx.raw('SELECT 1 AS one')).rows[0].one, 'knex', 'transaction');
    });
  } finally {
    await knex.destroy();
  }
}

async function sequelizeStack() {
  const { Sequelize, QueryTypes } = require('sequelize');
  const sq = new Sequelize(database, user, password, {
    host, port: Number(port), dialect: 'postgres', logging: false,
  });
  try {
    await sq.authenticate();
    ok('sequelize', 'authenticate');
    const rows = await sq.query('SELECT 1 AS one', { type: QueryTypes.SELECT });
    expectOne(rows[0].one, 'sequelize', 'query');
    await sq.transaction(async (t) => {
      const r = await sq.query('SELECT 1 AS one', { type: QueryTypes.SELECT, transaction: t });
      expectOne(r[0].one, 'sequelize', 'transaction');
    });
  } finally {
    await sq.close();
  }
}

async function postgresJs() {
  const postgres = require('postgres');
  const sql = postgres({ ...conn, max: 2, connect_timeout: 10, onnotice: () => {} });
  try {
    expectOne((await sql`SELECT 1 AS one`)[0].one, 'postgres-js', 'query');
    const p = await sql`SELECT ${41}::int AS answer`;
    if (p[0].answer !== 41) throw new Error(`postgres-js parameter gave ${JSON.stringify(p[0])}`);
    ok('postgres-js', 'parameter');
    const iso = await sql.begin('isolation level serializable read only', async (tx) =>
      (await tx`SHOW transaction_isolation`)[0].transaction_isolation);
    ok('postgres-js', `transaction ${iso}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function typeormStack() {
  require('reflect-metadata');
  const { DataSource } = require('typeorm');
  const ds = new DataSource({
    type: 'postgres', host, port: Number(port), username: user, password, database,
    entities: [], synchronize: false, logging: false,
  });
  await ds.initialize();
  try {
    ok('typeorm', 'initialize');
    expectOne((await ds.query('SELECT 1 AS one'))[0].one, 'typeorm', 'query');
    await ds.transaction('SERIALIZABLE', async (m) => {
      const r = await m.query('SHOW transaction_isolation');
      ok('typeorm', `transaction ${r[0].transaction_isolation}`);
    });
  } finally {
    await ds.destroy();
  }
}

const run = {
  'pg-pool': pgPool, knex: knexStack, sequelize: sequelizeStack, 'postgres-js': postgresJs,
  typeorm: typeormStack,
};

(async () => {
  for (const s of stacks) {
    if (!run[s]) throw new Error(`unknown stack ${s}`);
    await run[s]();
  }
  console.log(`done ${stacks.length} stacks`);
})().catch((e) => {
  console.error(`FAIL: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
