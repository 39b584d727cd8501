// `npm run worker`: run only the background jobs (re-checks, retries, acknowledgements, webhooks); no GraphQL.
// It serves /healthz and /metrics on HOST:PORT for monitoring. Pair it with API-only instances started with
// SCHEDULER_ENABLED=false.
import { createMonitoringServer, listenOn } from './http/monitoring.js';
import { exitOnFailure, startApp, stopOnSignals } from './startup.js';

exitOnFailure(async () => {
  // SCHEDULER_ENABLED=false is meant for the API instances; the worker runs the jobs regardless.
  const { app, config, log } = await startApp({ service: 'iap-entitlements-worker', adjust: (c) => ({ ...c, schedulerEnabled: true }) });
  app.startJobs();
  // /healthz and /metrics on HOST:PORT (metrics under the same rule as on an API instance), and METRICS_PORT if set.
  const monitoring = createMonitoringServer(app.metrics, app.metricsAccess);
  const port = await listenOn(monitoring, config.port, config.host);
  const metricsUrl = (await app.listenMetrics()) ?? `http://${config.host}:${port}/metrics`;
  log.info({ database: config.databaseUrl ? 'postgresql' : `pglite (${config.dataDir})`, metrics: metricsUrl }, 'worker running the background jobs');
  // The scheduler's timers are unref'd (so tests can exit); the worker keeps the process alive itself.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  stopOnSignals(log, async () => {
    clearInterval(keepAlive);
    monitoring.close();
    await app.close();
  });
});
