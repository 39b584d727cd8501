// Every benchmark runs on a PostgreSQL database of its own, migrated, and dropped afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate, openDatabase } from '../../src/persistence/orm.js';

export const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** The server key bench/read-path/serve.js configures. */
export const BENCH_API_KEY = 'bench-server-key-0123456789abcdef';

/** Creates and migrates a database, runs `use` with its URL, then drops it (whatever `use` did). */
export async function withBenchDatabase(use: (url: string) => Promise<void>): Promise<void> {
  const dbName = `iap_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  try {
    const orm = await openDatabase({ url: url.toString(), dataDir: '' });
    await migrate(orm);
    await orm.close(true);
    await use(url.toString());
  } finally {
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  }
}
