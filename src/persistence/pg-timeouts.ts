// Time limits for every PostgreSQL connection the service opens (the MikroORM pool, the hot-read pool, the
// change listener), so an unreachable or frozen database fails requests quickly instead of hanging them.
//
// - statement_timeout (server side): PostgreSQL cancels a statement running longer (SQLSTATE 57014).
// - a client-side answer timeout (pg `query_timeout`), a little longer: a server that is frozen or cut off
//   cannot cancel anything, so the client stops waiting itself and then drops the connection (see TimedClient).
// - connectionTimeoutMillis: opening a connection (pg Client), and waiting for a free one (pg-pool).
import pg from 'pg';

export interface DatabaseTimeouts {
  /** PostgreSQL statement_timeout; 0: no statement or answer timeout. */
  statementTimeoutMs: number;
  /** Opening a connection, and waiting for a free pooled one; 0: wait forever. */
  connectTimeoutMs: number;
}

/** How much longer than statement_timeout the client waits for the server's answer (its cancellation included). */
export const ANSWER_GRACE_MS = 1_000;

/** pg's message when `query_timeout` passes without an answer. */
export const QUERY_READ_TIMEOUT_MESSAGE = 'Query read timeout';

type Release = (err?: Error | boolean) => void;

/**
 * A pg Client that survives outages in a pool:
 * - It closes its connection when a query got no answer in time. pg's own `query_timeout` only rejects the
 *   caller's promise: the query stays in flight on the connection, so the pool would hand that connection
 *   (possibly inside an open transaction whose ROLLBACK timed out too) to the next request, which would then run
 *   inside the stale transaction once the server wakes up. Closing it makes the server roll back and the pool
 *   discard the client (pg-pool drops a released client that is ending).
 * - A checked-out client whose connection ends is given back to its pool at once, and releasing it again is a
 *   no-op. Kysely 0.29 (under MikroORM 7) never releases the connection when the `begin` of a transaction fails
 *   (ControlledTransactionBuilder.execute), which is exactly what happens on a connection the server just
 *   dropped: every outage would leak pooled connections until the pool was exhausted for good (and closing the
 *   ORM hung on them).
 */
export class TimedClient extends pg.Client {
  private poolRelease: Release | null = null;
  private checkedOut = false;

  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('end', () => {
      if (this.checkedOut) this.release(new Error('the connection ended while checked out'));
    });
    // pg-pool listens for errors only while a client is idle; the holder learns of it from its query.
    this.on('error', () => undefined);
  }

  /** pg-pool assigns a fresh release function at every checkout. */
  set release(fn: Release) {
    this.poolRelease = fn;
    this.checkedOut = true;
  }

  get release(): Release {
    return (err) => {
      if (!this.checkedOut || !this.poolRelease) return;
      this.checkedOut = false;
      this.poolRelease(err);
    };
  }

  // The overloads of pg.Client#query are many; this override only observes errors and passes everything through.
  override query(...args: unknown[]): any {
    const last = args.at(-1);
    if (typeof last === 'function') {
      args[args.length - 1] = (err: Error | null, result: unknown) => {
        this.dropIfUnanswered(err);
        (last as (err: Error | null, result: unknown) => void)(err, result);
      };
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    const result = (super.query as (...a: unknown[]) => unknown)(...args);
    if (result instanceof Promise) result.then(undefined, (err: unknown) => this.dropIfUnanswered(err));
    return result;
  }

  private dropIfUnanswered(err: unknown): void {
    if (err instanceof Error && err.message === QUERY_READ_TIMEOUT_MESSAGE) {
      // end() on a client with a query in flight destroys the socket; it emits 'end', never 'error'.
      this.end().catch(() => undefined);
    }
  }
}

/** Options for a pg Client or Pool (and MikroORM's `driverOptions`, which it passes to its pg Pool). */
export function pgTimeoutOptions(timeouts: DatabaseTimeouts | undefined): Pick<
  pg.PoolConfig,
  'Client' | 'statement_timeout' | 'query_timeout' | 'connectionTimeoutMillis'
> {
  if (!timeouts) return {};
  const { statementTimeoutMs, connectTimeoutMs } = timeouts;
  return {
    Client: TimedClient,
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs, query_timeout: statementTimeoutMs + ANSWER_GRACE_MS } : {}),
    ...(connectTimeoutMs > 0 ? { connectionTimeoutMillis: connectTimeoutMs } : {}),
  };
}

/** A promise that settles like `work`, or with `onTimeout()` when `ms` pass first. The timer never outlives it. */
export async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout()), ms);
  });
  // A late failure of the abandoned work must not become an unhandled rejection.
  work.catch(() => undefined);
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
