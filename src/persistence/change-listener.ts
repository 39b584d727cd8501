// Listens for PostgreSQL notifications that another instance changed a customer's entitlements, so each
// instance's read cache drops the entry within milliseconds. On any connection trouble the whole cache is
// dropped (a missed notification must not leave a stale entry) and the listener reconnects.
import pg from 'pg';
import type { Logger } from 'pino';

export class ChangeListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly onChange: (payload: string) => void,
    private readonly onGap: () => void,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  private async connect(): Promise<void> {
    // Keepalive: a silently dead connection is noticed by TCP instead of leaving caches stale.
    const client = new pg.Client({ connectionString: this.url, keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    client.on('notification', (msg) => {
      if (msg.channel === this.channel && msg.payload) this.onChange(msg.payload);
    });
    client.on('error', (err) => this.reconnect(err));
    client.on('end', () => this.reconnect(null));
    try {
      await client.connect();
      await client.query(`listen ${pg.escapeIdentifier(this.channel)}`);
      this.client = client;
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
    this.log.warn({ err: err?.message }, 'cache invalidation listener lost its connection; reconnecting');
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
