// The service sqlgate replaces, as the benchmark's peer: Express + mssql
// (tedious underneath) with a module-level singleton pool, the single-database
// pattern sqlgate was built to replace (bench/README.md, docs/benchmarks.md P3):
//
//   let pool = null; let poolConnect = null;
//
// It does the same work as sqlgate's POST /v1/query for one database:
// {sql, params} in, bound parameters (sp_executesql), rows as JSON objects
// out. GET /health/live is its HTTP floor. Configuration from the
// environment: PEER_LISTEN (host:port), PEER_DB_HOST, PEER_DB_PORT,
// PEER_DB_USER, PEER_DB_PASSWORD, PEER_DB_NAME, PEER_POOL_MAX (10).
'use strict';

const express = require('express');
const sql = require('mssql');

const config = {
  server: process.env.PEER_DB_HOST || '127.0.0.1',
  port: Number(process.env.PEER_DB_PORT || 1433),
  user: process.env.PEER_DB_USER,
  password: process.env.PEER_DB_PASSWORD,
  database: process.env.PEER_DB_NAME,
  pool: { max: Number(process.env.PEER_POOL_MAX || 10), min: 0, idleTimeoutMillis: 30000 },
  options: { encrypt: false, trustServerCertificate: true },
  requestTimeout: 15000,
  connectionTimeout: 15000,
};

let pool = null;
let poolConnect = null;

async function getConnectionPool() {
  if (pool === null) {
    pool = new sql.ConnectionPool(config);
    pool.on('error', () => {});
    poolConnect = pool.connect();
  }
  await poolConnect;
  return pool;
}

async function executeQuery(queryFn, operationName) {
  const p = await getConnectionPool();
  try {
    return await queryFn(p);
  } catch (err) {
    err.operation = operationName;
    throw err;
  }
}

const app = express();
app.use(express.json({ limit: '1mb' }));

app.get('/health/live', (req, res) => {
  res.json({ status: 'live' });
});

app.post('/query', async (req, res) => {
  const body = req.body || {};
  if (typeof body.sql !== 'string') {
    res.status(400).json({ error: { code: 'BAD_REQUEST', message: 'sql is required' } });
    return;
  }
  const started = process.hrtime.bigint();
  try {
    const result = await executeQuery((p) => {
      const request = p.request();
      for (const [name, value] of Object.entries(body.params || {})) {
        request.input(name, value);
      }
      return request.query(body.sql);
    }, body.operation);
    res.json({
      results: result.recordsets.map((rows) => ({ rows, row_count: rows.length })),
      rows_affected: result.rowsAffected.reduce((a, b) => a + b, 0),
      elapsed_ms: Number(process.hrtime.bigint() - started) / 1e6,
    });
  } catch (err) {
    res.status(400).json({ error: { code: 'SQL_ERROR', message: String(err.message) } });
  }
});

const [host, port] = (process.env.PEER_LISTEN || '127.0.0.1:3000').split(':');
getConnectionPool()
  .then(() => {
    app.listen(Number(port), host, () => {
      process.stdout.write(`listening on ${host}:${port}\n`);
    });
  })
  .catch((err) => {
    process.stderr.write(`cannot connect: ${err.message}\n`);
    process.exit(1);
  });

process.on('SIGTERM', () => {
  Promise.resolve(pool && pool.close()).finally(() => process.exit(0));
});
