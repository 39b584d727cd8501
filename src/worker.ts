// `npm run worker`: run only the background jobs (re-checks, retries, acknowledgements, webhooks); no GraphQL.
// It serves /healthz and /metrics on HOST:PORT for monitoring. Pair it with API-only instances started with
// SCHEDULER_ENABLED=false.
import { createServer } from 'node:http';
import { exitOnFailure, startApp, stopOnSignals } from './startup.js';

exitOnFailure(async () => {
  // SCHEDULER_ENABLED=false is meant for the API instances; the worker runs the jobs regardless.
  const { app, config, log } = await startApp({ service: 'iap-entitlements-worker', adjust: (c) => ({ ...c, schedulerEnabled: true }) });
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
  // The scheduler's timers are unref'd (so tests can exit); the worker keeps the process alive itself.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  stopOnSignals(log, async () => {
    clearInterval(keepAlive);
    monitoring.close();
    await app.close();
  });
});
