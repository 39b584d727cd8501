// isDatabaseUnavailable: which errors mean "the database is down or did not answer" (SERVICE_UNAVAILABLE) and
// which are bugs. The pg errors are real: produced by pg itself against a loopback server that speaks just enough
// of the PostgreSQL wire protocol to fail the way a real one does (or a closed port), then wrapped the way
// MikroORM wraps them. The outage test (test/integration/database-outage.test.ts) checks a real server too.
import { createServer } from 'node:net';
import { ConnectionException, DriverException, UniqueConstraintViolationException } from '@mikro-orm/core';
import { PostgreSqlPlatform } from '@mikro-orm/postgresql';
import { GraphQLError } from 'graphql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/domain/errors.js';
import { isDatabaseUnavailable } from '../../src/persistence/database-errors.js';
import { TimedClient } from '../../src/persistence/pg-timeouts.js';
import { FakePostgres, type Behaviour } from '../support/fake-postgres.js';

const fake = new FakePostgres();
const converter = new PostgreSqlPlatform().getExceptionConverter();

async function captured(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

/** A query through a fresh client against the fake server, with the behaviour given. */
async function queryError(behaviour: Behaviour, options: pg.ClientConfig = {}): Promise<Error> {
  fake.behaviour = behaviour;
  const client = new pg.Client({ connectionString: fake.url(), ...options });
  client.on('error', () => undefined);
  try {
    return await captured(async () => {
      await client.connect();
      await client.query('select 1');
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const real: Record<string, Error> = {};

beforeAll(async () => {
  await fake.start();
  const port = await closedPort();
  real.refused = await captured(async () => {
    const c = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    await c.connect();
  });
  real.refusedPool = await captured(() => new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` }).query('select 1'));
  real.tooManyClients = await queryError({ kind: 'refuse', code: '53300', message: 'sorry, too many clients already' });
  real.startingUp = await queryError({ kind: 'refuse', code: '57P03', message: 'the database system is starting up' });
  real.shuttingDown = await queryError({ kind: 'refuse', code: '57P03', message: 'the database system is shutting down' });
  real.adminShutdown = await queryError({ kind: 'query-error', code: '57P01', message: 'terminating connection due to administrator command', fatal: true });
  real.crashShutdown = await queryError({ kind: 'query-error', code: '57P02', message: 'terminating connection because of crash of another server process', fatal: true });
  real.statementTimeout = await queryError({ kind: 'query-error', code: '57014', message: 'canceling statement due to statement timeout' });
  real.connectionFailure = await queryError({ kind: 'query-error', code: '08006', message: 'connection failure', fatal: true });
  real.uniqueViolation = await queryError({ kind: 'query-error', code: '23505', message: 'duplicate key value violates unique constraint "customer_app_user_id_unique"' });
  real.syntaxError = await queryError({ kind: 'query-error', code: '42601', message: 'syntax error at or near "selec"' });
  real.deadlock = await queryError({ kind: 'query-error', code: '40P01', message: 'deadlock detected' });
  real.dropped = await queryError({ kind: 'drop-on-query' });
  real.connectTimeout = await queryError({ kind: 'silent' }, { connectionTimeoutMillis: 150 });
  real.readTimeout = await queryError({ kind: 'hang-query' }, { query_timeout: 150 });

  // A query on a client whose connection broke.
  fake.behaviour = { kind: 'drop-on-query' };
  const broken = new pg.Client({ connectionString: fake.url() });
  broken.on('error', () => undefined);
  await broken.connect();
  await broken.query('select 1').catch(() => undefined);
  real.notQueryable = await captured(() => broken.query('select 1'));
  await broken.end().catch(() => undefined);

  // pg-pool: opening a connection took too long; and no free connection in time.
  fake.behaviour = { kind: 'silent' };
  const slow = new pg.Pool({ connectionString: fake.url(), connectionTimeoutMillis: 150 });
  real.poolConnectTimeout = await captured(() => slow.query('select 1'));
  await slow.end();
  fake.behaviour = { kind: 'hang-query' };
  const full = new pg.Pool({ connectionString: fake.url(), max: 1, connectionTimeoutMillis: 150 });
  const held = await full.connect();
  real.poolAcquireTimeout = await captured(() => full.connect());
  held.release(true);
  await full.end();

  // TimedClient: after a read timeout the connection is closed, so what follows fails fast instead of queueing
  // behind the unanswered query.
  fake.behaviour = { kind: 'hang-query' };
  const timed = new TimedClient({ connectionString: fake.url(), query_timeout: 150 });
  await timed.connect();
  real.timedReadTimeout = await captured(() => timed.query('select 1'));
  real.afterTimedReadTimeout = await captured(() => timed.query('rollback'));
  await timed.end().catch(() => undefined);
});

afterAll(async () => {
  await fake.stop();
});

describe('isDatabaseUnavailable', () => {
  it('the captured errors look like what pg produces', () => {
    expect(real.refused).toMatchObject({ code: 'ECONNREFUSED' });
    expect(real.tooManyClients).toBeInstanceOf(pg.DatabaseError);
    expect(real.tooManyClients).toMatchObject({ code: '53300', severity: 'FATAL' });
    expect(real.statementTimeout).toMatchObject({ code: '57014', message: 'canceling statement due to statement timeout' });
    expect(real.dropped.message).toBe('Connection terminated unexpectedly');
    expect(real.connectTimeout.message).toMatch(/timeout/);
    expect(real.readTimeout.message).toBe('Query read timeout');
    expect(real.notQueryable.message).toBe('Client has encountered a connection error and is not queryable');
    expect(real.poolConnectTimeout.message).toBe('Connection terminated due to connection timeout');
    expect(real.poolAcquireTimeout.message).toBe('timeout exceeded when trying to connect');
    expect(real.timedReadTimeout.message).toBe('Query read timeout');
    expect(real.afterTimedReadTimeout.message).toMatch(/Client was closed and is not queryable|Connection terminated/);
  });

  const unavailable = [
    'refused',
    'refusedPool',
    'tooManyClients',
    'startingUp',
    'shuttingDown',
    'adminShutdown',
    'crashShutdown',
    'statementTimeout',
    'connectionFailure',
    'dropped',
    'connectTimeout',
    'readTimeout',
    'notQueryable',
    'poolConnectTimeout',
    'poolAcquireTimeout',
    'timedReadTimeout',
    'afterTimedReadTimeout',
  ];
  const bugs = ['uniqueViolation', 'syntaxError', 'deadlock'];

  it.each(unavailable)('%s: unavailable, as pg raises it and as MikroORM wraps it', (name) => {
    const err = real[name]!;
    expect(isDatabaseUnavailable(err)).toBe(true);
    // What MikroORM's PostgreSQL driver throws from a query: its converter's DriverException subclass.
    const wrapped = converter.convertException(err);
    expect(wrapped).toBeInstanceOf(DriverException);
    expect(isDatabaseUnavailable(wrapped)).toBe(true);
    expect(isDatabaseUnavailable(new ConnectionException(err))).toBe(true);
    // Wrapped again by code further up, and by GraphQL around a resolver's error.
    expect(isDatabaseUnavailable(new Error('creating the order failed', { cause: wrapped }))).toBe(true);
    expect(isDatabaseUnavailable(new GraphQLError('x', { originalError: new Error('y', { cause: err }) }))).toBe(true);
  });

  it.each(bugs)('%s: not unavailable, raw or wrapped', (name) => {
    const err = real[name]!;
    expect(isDatabaseUnavailable(err)).toBe(false);
    expect(isDatabaseUnavailable(converter.convertException(err))).toBe(false);
    expect(isDatabaseUnavailable(new Error('x', { cause: err }))).toBe(false);
  });

  it('MikroORM keeps the SQLSTATE on its own exception class', () => {
    const wrapped = converter.convertException(real.uniqueViolation!);
    expect(wrapped).toBeInstanceOf(UniqueConstraintViolationException);
    expect(wrapped).toMatchObject({ code: '23505' });
  });

  const errnoError = (code: string) => Object.assign(new Error(`connect ${code} 10.0.0.1:5432`), { code, errno: -1, syscall: 'connect' });
  it.each<[string, unknown, boolean]>([
    ['ECONNRESET', errnoError('ECONNRESET'), true],
    ['EPIPE', errnoError('EPIPE'), true],
    ['ETIMEDOUT', errnoError('ETIMEDOUT'), true],
    ['ENOTFOUND', Object.assign(new Error('getaddrinfo ENOTFOUND db.internal'), { code: 'ENOTFOUND', syscall: 'getaddrinfo' }), true],
    ['EAI_AGAIN', Object.assign(new Error('getaddrinfo EAI_AGAIN db.internal'), { code: 'EAI_AGAIN', syscall: 'getaddrinfo' }), true],
    ['EHOSTUNREACH', errnoError('EHOSTUNREACH'), true],
    ['AggregateError of refused addresses', new AggregateError([errnoError('ECONNREFUSED'), errnoError('ECONNREFUSED')], ''), true],
    ['sqlState (other drivers)', Object.assign(new DriverException(new Error('x')), { sqlState: '08001' }), true],
    ['Connection terminated', new Error('Connection terminated'), true],
    ['timeout expired (pg connect)', new Error('timeout expired'), true],
    ['class 08 prefix only on SQLSTATEs', Object.assign(new Error('x'), { code: '0800' }), false],
    ['other message', new Error('Connection terminated badly, or so'), false],
    ['AppError', new AppError('STORE_UNAVAILABLE', 'the App Store did not answer'), false],
    ['TypeError', new TypeError("Cannot read properties of undefined (reading 'id')"), false],
    ['serialization failure', Object.assign(new Error('could not serialize access'), { code: '40001' }), false],
    ['a string', 'ECONNREFUSED', false],
    ['null', null, false],
    ['undefined', undefined, false],
    ['a number code', Object.assign(new Error('x'), { code: 57014 }), false],
  ])('%s -> %s', (_name, err, expected) => {
    expect(isDatabaseUnavailable(err)).toBe(expected);
  });

  it('walks a bounded, possibly cyclic cause chain', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(isDatabaseUnavailable(a)).toBe(false);

    let deep: Error = real.refused!;
    for (let i = 0; i < 5; i++) deep = new Error(`level ${i}`, { cause: deep });
    expect(isDatabaseUnavailable(deep)).toBe(true);
    for (let i = 0; i < 20; i++) deep = new Error(`level ${i}`, { cause: deep });
    expect(isDatabaseUnavailable(deep)).toBe(false);
  });
});
