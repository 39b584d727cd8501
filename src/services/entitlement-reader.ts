// The hot read path: one indexed lookup of the customer's cached entitlement sources, kept in a small
// in-process cache. Writes on this instance invalidate it right after commit; writes on other instances
// arrive through PostgreSQL NOTIFY (see ChangeListener). The TTL bounds staleness if a notification is lost.
import type { EntitlementSource } from '../domain/engine.js';
import type { Orm } from '../persistence/orm.js';
import { toDate } from '../persistence/snapshot-codec.js';

export interface CustomerSnapshot {
  customerId: string;
  sources: EntitlementSource[];
  revision: number;
}

/** Reads one customer's row: id, entitlement_sources, revision. */
export type CustomerLookup = (appUserId: string) => Promise<Record<string, unknown> | undefined>;

const LOOKUP_SQL = 'select id, entitlement_sources, revision from customer where app_user_id = ?';

/** The lookup through the ORM's connection (PGlite: its single session). */
export function ormCustomerLookup(orm: Orm): CustomerLookup {
  return async (appUserId) => (await orm.em.getConnection().execute(LOOKUP_SQL, [appUserId], 'get')) as Record<string, unknown> | undefined;
}

interface CacheEntry {
  value: CustomerSnapshot | null;
  storedAt: number;
}

export class EntitlementReader {
  private readonly cache = new Map<string, CacheEntry>();
  /** Bumped on every invalidation: a read that overlapped one is not cached (it may predate the write). */
  private invalidations = 0;

  constructor(
    private readonly lookup: CustomerLookup,
    private readonly ttlMs: number,
    private readonly maxEntries = 100_000,
    private readonly monotonicNow: () => number = () => performance.now(),
  ) {}

  async read(appUserId: string): Promise<CustomerSnapshot | null> {
    const hit = this.cache.get(appUserId);
    if (hit && this.monotonicNow() - hit.storedAt < this.ttlMs) return hit.value;
    const seen = this.invalidations;
    const row = await this.lookup(appUserId);
    const value = row ? { customerId: row.id as string, sources: reviveSources(row.entitlement_sources), revision: Number(row.revision) } : null;
    if (this.ttlMs > 0 && seen === this.invalidations) this.store(appUserId, value);
    return value;
  }

  invalidate(appUserId: string): void {
    this.invalidations++;
    this.cache.delete(appUserId);
  }

  invalidateAll(): void {
    this.invalidations++;
    this.cache.clear();
  }

  private store(appUserId: string, value: CustomerSnapshot | null): void {
    if (this.cache.size >= this.maxEntries) {
      // Map keeps insertion order: drop the oldest entry.
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.delete(appUserId);
    this.cache.set(appUserId, { value, storedAt: this.monotonicNow() });
  }
}

function reviveSources(json: unknown): EntitlementSource[] {
  const list = (typeof json === 'string' ? JSON.parse(json) : json) as Record<string, unknown>[];
  return list.map((s) => ({
    ...(s as unknown as EntitlementSource),
    purchasedAt: toDate(s.purchasedAt)!,
    expiresAt: toDate(s.expiresAt),
    gracePeriodExpiresAt: toDate(s.gracePeriodExpiresAt),
    revokedAt: toDate(s.revokedAt),
  }));
}
