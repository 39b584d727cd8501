// Listens for PostgreSQL notifications that another instance changed a customer's entitlements, so each
// instance's read cache drops the entry within milliseconds. On any connection trouble the whole cache is
// dropped (a missed notification must not leave a stale entry) and the listener reconnects.
import pg from 'pg';
import type { Logger } from 'pino';
import { pgTimeoutOptions, TimedClient, type DatabaseTimeouts } from './pg-timeouts.js';

export class ChangeListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Failed reconnection attempts since the connection was lost (only the first is logged as a warning). */
  private attempts = 0;

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly onChange: (payload: string) => void,
    private readonly onGap: () => void,
    private readonly log: Logger,
    /** Bounds opening the connection (a frozen server must not stall reconnecting) and the LISTEN itself. */
    private readonly timeouts?: DatabaseTimeouts,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    // Keepalive: a silently dead connection is noticed by TCP instead of leaving caches stale.
    const client = new TimedClient({
      connectionString: this.url,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      ...pgTimeoutOptions(this.timeouts),
    });
    client.on('notification', (msg) => {
      if (msg.channel === this.channel && msg.payload) this.onChange(msg.payload);
    });
    // Only the current connection's trouble counts: a late event of one already given up must not tear down
    // the connection that replaced it.
    client.on('error', (err) => {
      if (this.client === client) this.reconnect(err);
    });
    client.on('end', () => {
      if (this.client === client) this.reconnect(null);
    });
    try {
      await client.connect();
      await client.query(`listen ${pg.escapeIdentifier(this.channel)}`);
      if (this.stopped) {
        await client.end().catch(() => undefined);
        return;
      }
      this.client = client;
      if (this.attempts > 0) this.log.info({ attempts: this.attempts }, 'cache invalidation listener reconnected');
      this.attempts = 0;
      // Anything may have changed while we were not listening.
      this.onGap();
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      this.reconnect(err as Error);
    }
  }

  private reconnect(err: Error | null): void {
    if (this.stopped || this.retryTimer) return;
    this.onGap();
    const old = this.client;
    this.client = null;
    if (old) {
      old.removeAllListeners('end');
      void old.end().catch(() => undefined);
    }
    // While it is down, every attempt (once a second) drops the cache again: nothing read meanwhile stays cached
    // longer than that without invalidation.
    if (this.attempts++ === 0) this.log.warn({ err: err?.message }, 'cache invalidation listener lost its connection; reconnecting');
    else this.log.debug({ err: err?.message, attempts: this.attempts }, 'cache invalidation listener still reconnecting');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, 1000);
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}
