// `npm run worker`: run only the background jobs (re-checks, retries, acknowledgements, webhooks), no HTTP.
// Pair it with API-only instances started with SCHEDULER_ENABLED=false.
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
  log.info({ database: config.databaseUrl ? 'postgresql' : `pglite (${config.dataDir})` }, 'worker running the background jobs');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'worker stopping');
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
