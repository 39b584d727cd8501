// What `npm start` and `npm run worker` share: configuration and the app built from it (a bad setting or catalog
// stops the process with one line naming it, exit code 2), and a graceful stop on SIGTERM or SIGINT.
import pino, { type Logger } from 'pino';
import { createApp, type App } from './app.js';
import { ConfigError, loadConfig, redactConfig, type AppConfig } from './config/config.js';
import { CatalogError } from './domain/catalog.js';

export async function startApp(options: { service: string; adjust?: (config: AppConfig) => AppConfig }): Promise<{ app: App; config: AppConfig; log: Logger }> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  config = options.adjust ? options.adjust(config) : config;
  const log = pino({ level: config.logLevel, base: { service: options.service } });
  log.info({ config: redactConfig(config) }, 'starting');
  try {
    return { app: await createApp({ config, log }), config, log };
  } catch (err) {
    if (err instanceof CatalogError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
}

/** On SIGTERM or SIGINT: run `stop` once, then exit 0 (1 if it failed). */
export function stopOnSignals(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight work');
    stop()
      .then(() => {
        log.info('stopped');
        process.exit(0);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

export function exitOnFailure(run: () => Promise<void>): void {
  run().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
