// Two service instances on one PostgreSQL database: a write on one is seen on the other at once, even though
// both cache entitlement reads (PostgreSQL NOTIFY invalidates the other instance's cache).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { purchase } from '../support/purchases.js';
import { migrationsList } from '../../migrations/index.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

describe('two instances on one PostgreSQL database', () => {
  let db: TestDatabase;
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase('postgresql');
    // Both start at once on an empty database: one migrates, the other waits for it and finds nothing to do.
    // A long TTL: only invalidation can make instance A see a change.
    [a, b] = await Promise.all([
      startTestApp('postgresql', { db, config: { ENTITLEMENT_CACHE_TTL_MS: 3_600_000 } }),
      startTestApp('postgresql', { db, config: { ENTITLEMENT_CACHE_TTL_MS: 3_600_000 } }),
    ]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  const entitlementsOn = async (t: TestApp, user: string) =>
    (await t.server(`query($id: String!) { entitlements(appUserId: $id) { identifier } }`, { id: user })).data!.entitlements as unknown[];

  it('migrated the shared database once per migration', async () => {
    const [row] = await a.app.orm.em.getConnection().execute('select count(*)::int as n from mikro_orm_migrations');
    expect(row.n).toBe(migrationsList.length);
  });

  it('invalidates the other instance cache when a purchase is recorded', async () => {
    expect(await entitlementsOn(a, 'shared')).toEqual([]);
    expect(await entitlementsOn(a, 'shared')).toEqual([]); // now cached on A
    await b.app.services.recorder.record('shared', [purchase({ productId: 'com.example.app.no_ads', transactionId: 'multi-1' })], new Date());
    expect(await entitlementsOn(b, 'shared')).toEqual([{ identifier: 'no_ads' }]);
    const deadline = Date.now() + 5_000;
    let seen: unknown[] = [];
    while (Date.now() < deadline) {
      seen = await entitlementsOn(a, 'shared');
      if (seen.length > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seen).toEqual([{ identifier: 'no_ads' }]);
  });

  it('serves repeated reads from the cache until a change arrives', async () => {
    await entitlementsOn(a, 'cached-user');
    // A write that bypasses the service (no NOTIFY) is invisible to the cache: proof that reads are cached.
    await a.app.orm.em.getConnection().execute(
      `insert into customer (id, app_user_id, entitlement_sources, revision, created_at, updated_at)
       values (gen_random_uuid(), 'cached-user', ?, 1, now(), now())`,
      [JSON.stringify([{ entitlement: 'pro', productId: 'p', store: 'APP_STORE', environment: 'PRODUCTION', kind: 'NON_CONSUMABLE', state: null, purchasedAt: new Date().toISOString(), expiresAt: null, gracePeriodExpiresAt: null, willRenew: false, revokedAt: null }])],
    );
    expect(await entitlementsOn(a, 'cached-user')).toEqual([]);
    expect(await entitlementsOn(b, 'cached-user')).toEqual([{ identifier: 'pro' }]);
  });
});
