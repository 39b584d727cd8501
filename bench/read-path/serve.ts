// One server under test, in its own process so the load generator does not share its CPU:
//   serve.js bare <dbUrl>   node:http + pg, the same indexed lookup, JSON out: the baseline
//   serve.js app  <dbUrl>   the real service (GraphQL), API key auth, logs at warn
// Prints "READY <port>" when listening.
import { createServer } from 'node:http';
import pg from 'pg';
import pino from 'pino';
import { createApp } from '../../src/app.js';
import { parseConfig } from '../../src/config/config.js';
import { BENCH_API_KEY } from '../support/bench-database.js';


const [mode, url, ttl] = process.argv.slice(2);
if (!url) throw new Error('usage: serve.js bare|app <postgres url> [cacheTtlMs]');

if (mode === 'bare') {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      const { variables } = JSON.parse(body) as { variables: { id: string } };
      pool
        .query({ name: 'ent', text: 'select id, entitlement_sources, revision from customer where app_user_id = $1', values: [variables.id] })
        .then((r) => {
          const row = r.rows[0];
          const out = JSON.stringify({ data: { entitlements: row ? row.entitlement_sources : [] } });
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(out);
        })
        .catch((err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        });
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(`READY ${(server.address() as { port: number }).port}`));
} else {
  const config = parseConfig({
    DATABASE_URL: url,
    HOST: '127.0.0.1',
    PORT: 0,
    API_KEYS: BENCH_API_KEY,
    LOG_LEVEL: 'warn',
    ENTITLEMENT_CACHE_TTL_MS: ttl ?? '5000',
  });
  const app = await createApp({ config, log: pino({ level: 'warn' }) });
  const listening = await app.listen();
  console.log(`READY ${new URL(listening).port}`);
}

// Exit through process.exit so --cpu-prof and friends can write their output.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
