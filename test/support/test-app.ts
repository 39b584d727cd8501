// Starts the real service (HTTP, GraphQL, database) on a random loopback port for a test.
import pino from 'pino';
import { createApp, type App } from '../../src/app.js';
import { parseConfig, type AppConfig } from '../../src/config/config.js';
import type { Clock } from '../../src/services/container.js';
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './databases.js';

export const TEST_API_KEY = 'test-server-key-0123456789abcdef';
export const TEST_JWT_SECRET = 'test-jwt-secret-0123456789abcdef0123456789';

export interface GqlResponse<T = Record<string, unknown>> {
  status: number;
  data: T | null;
  errors: { message: string; extensions?: Record<string, unknown> }[] | undefined;
}

export interface TestApp {
  app: App;
  url: string;
  db: TestDatabase;
  gql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>, headers?: Record<string, string>): Promise<GqlResponse<T>>;
  /** As the server (API key). */
  server<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<GqlResponse<T>>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  config?: Record<string, unknown>;
  clock?: Clock;
  /** Reuse a database (several instances on one database); otherwise a new one is made and dropped. */
  db?: TestDatabase;
  /** Collects the service's log lines (JSON objects) into this array. */
  logLines?: Record<string, unknown>[];
}

export async function startTestApp(kind: DatabaseKind, options: TestAppOptions = {}): Promise<TestApp> {
  const db = options.db ?? (await createTestDatabase(kind));
  const config: AppConfig = parseConfig({
    DATABASE_URL: db.url ?? undefined,
    DATA_DIR: db.dataDir || undefined,
    HOST: '127.0.0.1',
    PORT: 0,
    API_KEYS: TEST_API_KEY,
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'silent',
    // Tests run jobs themselves, with their own clock.
    SCHEDULER_ENABLED: 'false',
    ...options.config,
  });
  const lines = options.logLines;
  const log = lines
    ? pino({ level: 'debug' }, { write: (chunk: string) => void lines.push(JSON.parse(chunk) as Record<string, unknown>) })
    : pino({ level: 'silent' });
  const app = await createApp({ config, clock: options.clock, log });
  const url = await app.listen();
  const gql: TestApp['gql'] = async (query, variables, headers = {}) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: any; errors?: GqlResponse['errors'] };
    return { status: res.status, data: body.data ?? null, errors: body.errors };
  };
  return {
    app,
    url,
    db,
    gql,
    server: (query, variables) => gql(query, variables, { authorization: `Bearer ${TEST_API_KEY}` }),
    async close() {
      await app.close();
      if (!options.db) await db.drop();
    },
  };
}
