// A small pg pool for the hottest read (the entitlement check) on PostgreSQL: one named prepared statement,
// no query builder in between. Writes and everything else go through MikroORM.
import pg from 'pg';
import type { CustomerLookup } from '../services/entitlement-reader.js';
import { pgTimeoutOptions, type DatabaseTimeouts } from './pg-timeouts.js';

export class ReadPool {
  private readonly pool: pg.Pool;

  constructor(url: string, max: number, timeouts?: DatabaseTimeouts) {
    this.pool = new pg.Pool({ connectionString: url, max, ...pgTimeoutOptions(timeouts) });
    // Idle clients can lose their connection (server restart); the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  readonly customerLookup: CustomerLookup = async (appUserId) => {
    const result = await this.pool.query({
      name: 'iap_customer_entitlements',
      text: 'select id, entitlement_sources, revision from customer where app_user_id = $1',
      values: [appUserId],
    });
    return result.rows[0] as Record<string, unknown> | undefined;
  };

  close(): Promise<void> {
    return this.pool.end();
  }
}
