// `npm start`: run the service until SIGTERM or SIGINT.
import { exitOnFailure, startApp, stopOnSignals } from './startup.js';

exitOnFailure(async () => {
  const { app, config, log } = await startApp({ service: 'iap-entitlements' });
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
  stopOnSignals(log, () => app.close());
});
