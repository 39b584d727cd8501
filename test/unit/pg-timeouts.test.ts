// The time limits every PostgreSQL connection gets, and TimedClient's behaviour in a pool when a connection
// breaks or a query gets no answer, against a loopback server speaking the start of the PostgreSQL protocol.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANSWER_GRACE_MS, pgTimeoutOptions, TimedClient, withDeadline } from '../../src/persistence/pg-timeouts.js';
import { FakePostgres } from '../support/fake-postgres.js';

const fake = new FakePostgres();
beforeAll(() => fake.start());
afterAll(() => fake.stop());

async function until(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

describe('pgTimeoutOptions', () => {
  it.each<[string, Parameters<typeof pgTimeoutOptions>[0], Record<string, unknown>]>([
    ['none (the migrate command)', undefined, {}],
    ['both', { statementTimeoutMs: 10_000, connectTimeoutMs: 5_000 }, { Client: TimedClient, statement_timeout: 10_000, query_timeout: 10_000 + ANSWER_GRACE_MS, connectionTimeoutMillis: 5_000 }],
    ['statement timeout off', { statementTimeoutMs: 0, connectTimeoutMs: 5_000 }, { Client: TimedClient, connectionTimeoutMillis: 5_000 }],
  ])('%s', (_name, timeouts, expected) => {
    expect(pgTimeoutOptions(timeouts)).toEqual(expected);
  });

  it('pg sends statement_timeout in the startup message of every connection', async () => {
    fake.behaviour = { kind: 'hang-query' };
    const client = new TimedClient({ connectionString: fake.url(), ...pgTimeoutOptions({ statementTimeoutMs: 1234, connectTimeoutMs: 1000 }) });
    await client.connect();
    expect(fake.lastStartup).toMatchObject({ user: 'postgres', statement_timeout: '1234' });
    await client.end();
  });
});

describe('TimedClient in a pool', () => {
  it('gives a checked-out client back to the pool when its connection ends; releasing it again is a no-op', async () => {
    fake.behaviour = { kind: 'drop-on-query' };
    const pool = new pg.Pool({ connectionString: fake.url(), max: 1, Client: TimedClient });
    const client = await pool.connect();
    // What Kysely does when `begin` fails: the query rejects and the connection is never released.
    await expect(client.query('begin')).rejects.toThrow('Connection terminated unexpectedly');
    await until(() => pool.totalCount === 0);
    expect(pool.totalCount).toBe(0);
    expect(() => client.release()).not.toThrow();
    await pool.end();
  });

  it('a plain pg Client stays checked out in the same case (why TimedClient exists)', async () => {
    fake.behaviour = { kind: 'drop-on-query' };
    const pool = new pg.Pool({ connectionString: fake.url(), max: 1 });
    const client = await pool.connect();
    client.on('error', () => undefined);
    await expect(client.query('begin')).rejects.toThrow('Connection terminated unexpectedly');
    await new Promise((r) => setTimeout(r, 50));
    expect(pool.totalCount).toBe(1);
    client.release();
    await pool.end();
  });

  it('closes a connection whose query got no answer, so nothing queues behind it and the pool discards it', async () => {
    fake.behaviour = { kind: 'hang-query' };
    const pool = new pg.Pool({ connectionString: fake.url(), max: 1, Client: TimedClient, query_timeout: 150 });
    await expect(pool.query('select 1')).rejects.toThrow('Query read timeout');
    await until(() => pool.totalCount === 0);
    expect(pool.totalCount).toBe(0);
    // A transaction's client: after the timed-out statement its ROLLBACK fails at once instead of waiting.
    const client = await pool.connect();
    await expect(client.query('insert into t values (1)')).rejects.toThrow('Query read timeout');
    const started = Date.now();
    await expect(client.query('rollback')).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(100);
    client.release();
    await pool.end();
  });
});

describe('withDeadline', () => {
  it('settles like the work when it is in time, and with the fallback when it is not', async () => {
    expect(await withDeadline(Promise.resolve('ok'), 1000, () => 'late')).toBe('ok');
    await expect(withDeadline(Promise.reject(new Error('boom')), 1000, () => 'late')).rejects.toThrow('boom');
    let failLate!: (e: Error) => void;
    const slow = new Promise<string>((_, reject) => (failLate = reject));
    expect(await withDeadline(slow, 20, () => 'late')).toBe('late');
    // The abandoned work failing later is not an unhandled rejection (vitest would fail the run).
    failLate(new Error('too late'));
    await new Promise((r) => setTimeout(r, 10));
  });
});
