// `npm run worker`: run only the background jobs (re-checks, retries, acknowledgements, webhooks); no GraphQL.
// It serves /healthz and /metrics on HOST:PORT for monitoring. Pair it with API-only instances started with
// SCHEDULER_ENABLED=false.
import { createServer } from 'node:http';
import pino from 'pino';
import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config/config.js';
import { CatalogError } from './domain/catalog.js';

async function main(): Promise<void> {
  let config;
  try {
    config = { ...loadConfig(), schedulerEnabled: true };
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = pino({ level: config.logLevel, base: { service: 'iap-entitlements-worker' } });
  let app;
  try {
    app = await createApp({ config, log });
  } catch (err) {
    if (err instanceof CatalogError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  app.startJobs();
  const monitoring = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/metrics') {
      app.metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': app.metrics.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    monitoring.once('error', reject);
    monitoring.listen(config.port, config.host, () => resolve());
  });
  const address = monitoring.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ database: config.databaseUrl ? 'postgresql' : `pglite (${config.dataDir})`, metrics: `http://${config.host}:${port}/metrics` }, 'worker running the background jobs');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'worker stopping');
    monitoring.close();
    app
      .close()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The scheduler's timers are unref'd (so tests can exit); the worker keeps the process alive itself.
  setInterval(() => undefined, 1 << 30);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
