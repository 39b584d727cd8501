// Opens the database: PostgreSQL when a URL is configured, otherwise embedded PGlite in a directory.
// Both run the same migrations from migrations/.
import { mkdirSync } from 'node:fs';
import type { MikroORM as CoreMikroORM } from '@mikro-orm/core';
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM as PgliteMikroORM } from '@mikro-orm/pglite';
import { MikroORM as PostgresMikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import type { EntityManager as SqlEntityManager } from '@mikro-orm/sql';
import { migrationsList } from '../../migrations/index.js';
import { ENTITIES } from './entities.js';
import { pgTimeoutOptions, type DatabaseTimeouts } from './pg-timeouts.js';

export type Orm = CoreMikroORM & { em: SqlEntityManager };
export type Em = SqlEntityManager;

export interface DatabaseOptions {
  /** postgres:// URL; null opens embedded PGlite. */
  url: string | null;
  /** PGlite data directory; 'memory://' keeps it in memory (tests). */
  dataDir: string;
  poolMax?: number;
  debug?: boolean;
  /** PostgreSQL only: statement, answer and connect timeouts on every pooled connection. None: no limits (the
   *  migrate command). Migrations always run without them (see migrate). */
  timeouts?: DatabaseTimeouts;
}

/** How each ORM was opened, so migrate() can open a connection without timeouts for long migrations. */
const openedWith = new WeakMap<object, DatabaseOptions>();

export function databaseKind(options: DatabaseOptions): 'postgresql' | 'pglite' {
  return options.url ? 'postgresql' : 'pglite';
}

const common = {
  entities: ENTITIES,
  extensions: [Migrator],
  migrations: {
    migrationsList,
    path: './migrations',
    pathTs: './migrations',
    tableName: 'mikro_orm_migrations',
    snapshot: false,
    silent: true,
  },
  // Entities are never shared between requests: every unit of work forks its own entity manager.
  allowGlobalContext: false,
  ignoreUndefinedInQuery: true,
  forceUtcTimezone: true,
};

export async function openDatabase(options: DatabaseOptions): Promise<Orm> {
  if (options.url) {
    const orm = (await PostgresMikroORM.init({
      ...common,
      clientUrl: options.url,
      pool: { min: 0, max: options.poolMax ?? 10 },
      // PostgreSqlConnection.createKyselyDialect merges driverOptions into the options of its pg Pool, which
      // passes them on to every pg Client it opens.
      driverOptions: pgTimeoutOptions(options.timeouts),
      debug: options.debug ?? false,
    })) as unknown as Orm;
    openedWith.set(orm, options);
    return orm;
  }
  const inMemory = options.dataDir.startsWith('memory://');
  if (!inMemory) mkdirSync(options.dataDir, { recursive: true });
  return (await PgliteMikroORM.init({
    ...common,
    dbName: inMemory ? 'memory://' : options.dataDir,
    debug: options.debug ?? false,
  })) as unknown as Orm;
}

/** Any fixed number: the PostgreSQL advisory lock that lets one instance at a time migrate. */
const MIGRATION_LOCK_KEY = 7_351_202_611;

/**
 * Applies pending migrations; returns the names applied. On PostgreSQL several instances may start at once:
 * an advisory lock makes the others wait, and they then find nothing pending.
 */
export async function migrate(orm: Orm, databaseUrl?: string | null): Promise<string[]> {
  if (!databaseUrl) return (await orm.migrator.up()).map((m) => m.name);
  const opened = openedWith.get(orm);
  // Waiting for another instance's migration may take long: only opening the connection is limited.
  const lock = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: opened?.timeouts?.connectTimeoutMs || undefined });
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    // A migration (an index on a large table) may run longer than the statement timeout of the service's
    // pool: pending migrations run through an ORM of their own without one.
    if (!opened?.timeouts || (await pendingMigrations(orm)).length === 0) return (await orm.migrator.up()).map((m) => m.name);
    const unlimited = await openDatabase({ ...opened, timeouts: undefined });
    try {
      return (await unlimited.migrator.up()).map((m) => m.name);
    } finally {
      await unlimited.close(true);
    }
  } finally {
    await lock.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await lock.end();
  }
}

export async function pendingMigrations(orm: Orm): Promise<string[]> {
  return (await orm.migrator.getPending()).map((m) => m.name);
}
