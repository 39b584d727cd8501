// `npm start`: run the service until SIGTERM or SIGINT.
import pino from 'pino';
import { createApp } from './app.js';
import { ConfigError, loadConfig, redactConfig } from './config/config.js';
import { CatalogError } from './domain/catalog.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const log = pino({ level: config.logLevel, base: { service: 'iap-entitlements' } });
  log.info({ config: redactConfig(config) }, 'starting');
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
  const url = await app.listen();
  log.info({ url, database: config.databaseUrl ? 'postgresql' : `pglite (${config.dataDir})` }, 'listening');
  if (config.devMode) {
    log.warn(
      { url },
      'LOCAL DEVELOPMENT MODE: no API_KEYS, JWT_SECRET or JWT_JWKS_URL set, so every caller has full access and the server ' +
        'listens on loopback only. Try: curl -s ' +
        url +
        ` -H 'content-type: application/json' -d '{"query":"{ products { store productId kind entitlements } }"}'`,
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight requests');
    app
      .close()
      .then(() => {
        log.info('stopped');
        process.exit(0);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
