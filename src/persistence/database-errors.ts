// Tells an outage apart from a bug: an error that means the database could not be reached, dropped the
// connection, refused it for now, or did not answer in time. The HTTP edge answers those with SERVICE_UNAVAILABLE
// (503, Retry-After) and logs them as warnings; anything else stays an INTERNAL_SERVER_ERROR.
//
// What arrives here: pg's own errors (plain Error with a fixed message, or a DatabaseError carrying the SQLSTATE
// in `code`), Node socket errors (`code` ECONNREFUSED, ...; an AggregateError when several addresses were
// tried), pg-pool's wrappers (`cause`), and MikroORM 7's DriverException family (ConnectionException,
// ServerException, ...), which copies every own property of the driver's error (`code`, `message`, ...) onto
// itself instead of keeping it (see @mikro-orm/core/exceptions.js); `sqlState` is where other drivers put it.
import { QUERY_READ_TIMEOUT_MESSAGE } from './pg-timeouts.js';

/** Node socket and DNS errors: the database host cannot be reached, or the connection broke. */
const SOCKET_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs outside class 08 (connection exception, matched as a class) that mean "not now". */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown: terminating connection due to administrator command (server stopping)
  '57P02', // crash_shutdown: another backend crashed, the server is restarting
  '57P03', // cannot_connect_now: the database system is starting up / shutting down / in recovery
  '53300', // too_many_connections
  '57014', // query_canceled: statement_timeout (or an administrator's pg_cancel_backend)
]);

/** pg and pg-pool errors without a code, recognised by their fixed messages. */
const UNAVAILABLE_MESSAGES = new Set([
  'Connection terminated', // the client ended while queries were queued
  'Connection terminated unexpectedly', // the server closed the socket
  'Connection terminated due to connection timeout', // pg-pool: opening a connection took too long
  'timeout exceeded when trying to connect', // pg-pool: no free connection within connectionTimeoutMillis
  'timeout expired', // pg Client: connectionTimeoutMillis passed while opening the connection
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable', // a query after the connection was dropped (e.g. its ROLLBACK)
  QUERY_READ_TIMEOUT_MESSAGE, // pg query_timeout: no answer from the server in time
]);

const MAX_DEPTH = 8;
const MAX_VISITED = 32;

/** True when `err` (or an error it wraps) means the database is unreachable or did not answer in time. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const seen = new Set<object>();
  const queue: { value: unknown; depth: number }[] = [{ value: err, depth: 0 }];
  while (queue.length > 0 && seen.size < MAX_VISITED) {
    const { value, depth } = queue.shift()!;
    if (value === null || typeof value !== 'object' || seen.has(value)) continue;
    seen.add(value);
    if (meansUnavailable(value as Record<string, unknown>)) return true;
    if (depth >= MAX_DEPTH) continue;
    const e = value as { cause?: unknown; previous?: unknown; originalError?: unknown; errors?: unknown };
    // `previous`: older MikroORM kept the driver error there; `originalError`: a GraphQLError's resolver error.
    for (const next of [e.cause, e.previous, e.originalError]) queue.push({ value: next, depth: depth + 1 });
    if (Array.isArray(e.errors)) for (const next of e.errors.slice(0, 8)) queue.push({ value: next, depth: depth + 1 });
  }
  return false;
}

function meansUnavailable(e: Record<string, unknown>): boolean {
  for (const code of [e.code, e.sqlState]) {
    if (typeof code !== 'string') continue;
    if (SOCKET_ERROR_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code)) return true;
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  return typeof e.message === 'string' && UNAVAILABLE_MESSAGES.has(e.message);
}
