// Assembles one service instance: database, catalog, services, GraphQL and HTTP. Used by main.ts and by
// the integration tests, which start the real thing on a random port.
import pino, { type Logger } from 'pino';
import { Authenticator } from './auth/authenticator.js';
import { PubSubPushVerifier } from './auth/pubsub-push.js';
import { loadCatalogFile } from './config/catalog-file.js';
import type { AppConfig } from './config/config.js';
import type { Catalog } from './domain/catalog.js';
import { buildAppSchema } from './graphql/schema.js';
import { Metrics } from './http/metrics.js';
import { HttpServer } from './http/server.js';
import { createMonitoringServer, listenOn, metricsAccessOnApiPort, type MetricsAccess } from './http/monitoring.js';
import type { Server } from 'node:http';
import { syncCatalog } from './persistence/catalog-sync.js';
import { syncWebhookEndpoints } from './persistence/webhook-endpoint-sync.js';
import { ChangeListener } from './persistence/change-listener.js';
import { ReadPool } from './persistence/read-pool.js';
import { withDeadline } from './persistence/pg-timeouts.js';
import { databaseKind, migrate, openDatabase, pendingMigrations, type Orm } from './persistence/orm.js';
import { ENTITLEMENTS_CHANGED_CHANNEL } from './services/purchase-recorder.js';
import { createServices, type Clock, type Services } from './services/container.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { jobsFor, PgRunCoordinator, Scheduler } from './scheduler/scheduler.js';

export interface AppOptions {
  config: AppConfig;
  /** Defaults to the catalog file named in the config. */
  catalog?: Catalog;
  clock?: Clock;
  log?: Logger;
}

export interface App {
  config: AppConfig;
  orm: Orm;
  services: Services;
  http: HttpServer;
  metrics: Metrics;
  log: Logger;
  /** Who may read /metrics on PORT (the worker's monitoring server follows the same rule). */
  metricsAccess: MetricsAccess;
  /** Listens on the configured host and port (port 0: any free port). Returns the URL of /graphql. */
  listen(): Promise<string>;
  /** Serves /metrics on METRICS_PORT when it is set (listen() calls it). Returns the metrics URL, or null. */
  listenMetrics(): Promise<string | null>;
  /** Starts the background jobs without serving HTTP (`npm run worker`). */
  startJobs(): void;
  /** Graceful stop: no new requests, in-flight ones finish, then the database closes. */
  close(): Promise<void>;
}

export async function createApp(options: AppOptions): Promise<App> {
  const { config } = options;
  const log = options.log ?? pino({ level: config.logLevel, base: { service: 'iap-entitlements' } });
  const catalog = options.catalog ?? loadCatalogFile(config.catalogPath);
  // Every PostgreSQL connection (ORM pool, read pool, change listener) gets the same limits; PGlite ignores them.
  const dbTimeouts = { statementTimeoutMs: config.dbStatementTimeoutMs, connectTimeoutMs: config.dbConnectTimeoutMs };
  const orm = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolMax: config.dbPoolMax, timeouts: dbTimeouts });
  try {
    const applied = await migrate(orm, config.databaseUrl);
    if (applied.length > 0) log.info({ applied }, 'applied database migrations');
    await syncCatalog(orm, catalog);
    await syncWebhookEndpoints(orm, config.webhooks?.urls ?? []);
  } catch (err) {
    await orm.close(true);
    throw err;
  }
  const readPool = config.databaseUrl ? new ReadPool(config.databaseUrl, config.dbPoolMax, dbTimeouts) : null;
  const metrics = new Metrics();
  const services = createServices({
    orm,
    catalog,
    config,
    clock: options.clock ?? (() => new Date()),
    log,
    customerLookup: readPool?.customerLookup,
    webhookMetrics: metrics,
    recheckMetrics: { checked: (store, outcome) => metrics.recheck(store, outcome) },
  });
  const listener = config.databaseUrl
    ? new ChangeListener(
        config.databaseUrl,
        ENTITLEMENTS_CHANGED_CHANNEL,
        (appUserId) => services.reader.invalidate(appUserId),
        () => services.reader.invalidateAll(),
        log,
        dbTimeouts,
      )
    : null;
  await listener?.start();
  metrics.setBacklogSource(() => services.revalidator.backlog(services.clock()));
  const coordinator = new PgRunCoordinator(orm, `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`);
  const scheduler = config.schedulerEnabled ? new Scheduler(jobsFor(services, config.schedulerIntervalSeconds), log, coordinator, metrics) : null;
  let jobsStarted = false;
  const startJobs = () => {
    if (!scheduler || jobsStarted) return;
    jobsStarted = true;
    scheduler.start();
    // Acknowledgements or retries a previous run left behind are picked up now, not a minute later.
    void scheduler.runAllOnce();
  };
  const authenticator = new Authenticator(config.auth, config.devMode);
  const metricsAccess = metricsAccessOnApiPort({ ...config, authenticator });
  const http = new HttpServer({
    schema: await buildAppSchema(),
    services,
    authenticator,
    metrics,
    log,
    maxDepth: config.graphqlMaxDepth,
    maxComplexity: config.graphqlMaxComplexity,
    introspection: config.graphqlIntrospection,
    devMode: config.devMode,
    metricsAccess,
    maxBufferedBodyBytes: config.maxBufferedBodyBytes,
    pubsubVerifier: config.google?.pubsub ? new PubSubPushVerifier(config.google.pubsub) : null,
    // Answers within READINESS_TIMEOUT_MS even when the database is frozen (its queries then finish or fail on
    // their own timeouts, unobserved).
    ready: () => {
      const database = databaseKind({ url: config.databaseUrl, dataDir: config.dataDir });
      const check = async () => {
        await orm.em.getConnection().execute('select 1');
        const pending = await pendingMigrations(orm);
        return { ok: pending.length === 0, detail: { database, pendingMigrations: pending } as Record<string, unknown> };
      };
      return withDeadline(check(), config.readinessTimeoutMs, () => ({
        ok: false,
        detail: { database, error: `database did not answer within ${config.readinessTimeoutMs} ms` },
      }));
    },
  });
  let closed = false;
  let metricsServer: Server | null = null;
  const shown = (host: string) => (host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host);
  const listenMetrics = async (): Promise<string | null> => {
    if (config.metricsPort === null || metricsServer) return null;
    metricsServer = createMonitoringServer(metrics, 'open');
    const port = await listenOn(metricsServer, config.metricsPort, config.host);
    return `http://${shown(config.host)}:${port}/metrics`;
  };
  return {
    config,
    orm,
    services,
    http,
    metrics,
    log,
    metricsAccess,
    async listen() {
      const { port, host } = await http.listen(config.port, config.host);
      await listenMetrics();
      startJobs();
      return `http://${shown(host)}:${port}/graphql`;
    },
    listenMetrics,
    startJobs,
    async close() {
      if (closed) return;
      closed = true;
      await scheduler?.stop();
      await http.close(config.shutdownTimeoutMs);
      metricsServer?.close();
      await services.storeTasks.idle();
      await services.webhooks.close();
      await listener?.stop();
      await readPool?.close();
      await orm.close(true);
    },
  };
}
