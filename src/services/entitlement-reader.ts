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
  /** Estimated bytes the entry holds: the cache is bounded by memory, not by how many customers it holds. */
  bytes: number;
}

/** Default memory bound of one instance's cache. */
export const DEFAULT_CACHE_MAX_BYTES = 64 * 1024 * 1024;
/** What an entry costs beyond its key and sources: the map slot, the entry and snapshot objects. */
const ENTRY_OVERHEAD_BYTES = 200;
/** One entitlement source in memory: a dozen short strings and dates. */
const SOURCE_BYTES = 600;

export class EntitlementReader {
  private readonly cache = new Map<string, CacheEntry>();
  private bytes = 0;
  /** Bumped on every invalidation: a read that overlapped one is not cached (it may predate the write). */
  private invalidations = 0;

  constructor(
    private readonly lookup: CustomerLookup,
    private readonly ttlMs: number,
    private readonly maxBytes = DEFAULT_CACHE_MAX_BYTES,
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
    this.remove(appUserId);
  }

  invalidateAll(): void {
    this.invalidations++;
    this.cache.clear();
    this.bytes = 0;
  }

  /** Estimated bytes held now (for tests and metrics). */
  get heldBytes(): number {
    return this.bytes;
  }

  private remove(appUserId: string): void {
    const entry = this.cache.get(appUserId);
    if (!entry) return;
    this.cache.delete(appUserId);
    this.bytes -= entry.bytes;
  }

  private store(appUserId: string, value: CustomerSnapshot | null): void {
    const bytes = ENTRY_OVERHEAD_BYTES + 2 * appUserId.length + (value ? value.customerId.length * 2 + value.sources.length * SOURCE_BYTES : 0);
    if (bytes > this.maxBytes) return;
    this.remove(appUserId);
    // Map keeps insertion order: drop the oldest entries until the new one fits.
    for (const [oldest] of this.cache) {
      if (this.bytes + bytes <= this.maxBytes) break;
      this.remove(oldest);
    }
    this.cache.set(appUserId, { value, storedAt: this.monotonicNow(), bytes });
    this.bytes += bytes;
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
