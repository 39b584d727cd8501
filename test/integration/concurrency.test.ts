// Many requests at once: nothing hangs (PGlite serves one session at a time), nothing is granted twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_KINDS } from '../support/databases.js';
import { monthly, purchase } from '../support/purchases.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

describe.each(DATABASE_KINDS)('concurrency on %s', (kind) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(kind);
    for (let i = 0; i < 5; i++) {
      await t.app.services.recorder.record(`c${i}`, [purchase({ store: 'PLAY_STORE', productId: 'coins_100', transactionId: `seed-${kind}-${i}`, quantity: 10 })], new Date());
    }
  });
  afterAll(async () => {
    await t?.close();
  });

  it('completes 50 parallel GraphQL requests mixing reads and writes', async () => {
    const requests = Array.from({ length: 50 }, (_, i) => {
      const user = `c${i % 5}`;
      if (i % 3 === 0) {
        return t.server(`mutation($input: SpendCreditsInput!) { spendCredits(input: $input) { balance } }`, {
          input: { appUserId: user, currency: 'coins', amount: 1, idempotencyKey: `mix-${i}` },
        });
      }
      return t.server(`query($id: String!) { customer(appUserId: $id) { entitlements { identifier } creditBalances { balance } subscriptions { state } } }`, { id: user });
    });
    const results = await Promise.race([
      Promise.all(requests),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('requests did not complete within 30 s')), 30_000)),
    ]);
    expect(results).toHaveLength(50);
    for (const r of results) expect(r.errors).toBeUndefined();
    const spends = Array.from({ length: 50 }, (_, i) => i).filter((i) => i % 3 === 0).length;
    const [total] = await t.app.orm.em.getConnection().execute('select sum(balance)::int as total from credit_balance');
    expect(total.total).toBe(5 * 1000 - spends);
  });

  it('gives one subscription, one grant set and one event set to racing submissions of one purchase', async () => {
    const start = new Date(Date.now() - 86_400_000);
    const p = monthly(start, { lineageId: `race-sub-${kind}`, transactionId: `race-sub-${kind}` });
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => t.app.services.recorder.record('racer', [p], new Date())));
    expect(outcomes.filter((o) => o.newTransactionIds.length === 1)).toHaveLength(1);
    expect(outcomes.filter((o) => o.knownTransactionIds.length === 1)).toHaveLength(9);
    const conn = t.app.orm.em.getConnection();
    const [subs] = await conn.execute(`select count(*)::int as n from subscription where lineage_id = ?`, [p.lineageId]);
    const [grants] = await conn.execute(`select count(*)::int as n from entitlement_grant where source_key = ? and superseded_at is null`, [`sub:APP_STORE:${p.lineageId}`]);
    const [events] = await conn.execute(`select count(*)::int as n from event where lineage_id = ? and type = 'INITIAL_PURCHASE'`, [p.lineageId]);
    expect([subs.n, grants.n, events.n]).toEqual([1, 1, 1]);
  });

  it('keeps a racing purchase with exactly one of two customers', async () => {
    const p = purchase({ productId: 'com.example.app.no_ads', transactionId: `contested-${kind}` });
    const [a, b] = await Promise.all([t.app.services.recorder.record('first', [p], new Date()), t.app.services.recorder.record('second', [p], new Date())]);
    const winners = [a, b].filter((o) => o.newTransactionIds.length === 1);
    const losers = [a, b].filter((o) => o.foreignTransactionIds.length === 1);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    const [grants] = await t.app.orm.em.getConnection().execute(`select count(distinct customer_id)::int as n from entitlement_grant where store_transaction_id = ?`, [p.transactionId]);
    expect(grants.n).toBe(1);
  });
});

describe.each(DATABASE_KINDS)('racing writers on %s', (kind) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  const count = async (sql: string, params: unknown[] = []) => {
    const [row] = await t.app.orm.em.getConnection().execute(sql, params);
    return row.n as number;
  };

  it('records consumable purchases while the same customer spends, without deadlock or lost credit', async () => {
    await t.app.services.recorder.record('gamer', [purchase({ store: 'PLAY_STORE', productId: 'coins_100', transactionId: `gamer-seed-${kind}`, quantity: 1 })], new Date());
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 15; i++) {
      work.push(t.app.services.recorder.record('gamer', [purchase({ store: 'PLAY_STORE', productId: 'coins_100', transactionId: `gamer-${kind}-${i}`, quantity: 1 })], new Date()));
      work.push(t.app.services.credits.spend('gamer', 'coins', 5, `gamer-spend-${i}`, new Date()));
    }
    const settled = await Promise.allSettled(work);
    expect(settled.filter((r) => r.status === 'rejected')).toEqual([]);
    const balances = await t.app.services.queries.balances((await t.app.services.reader.read('gamer'))!.customerId);
    expect(balances).toEqual([{ currency: 'coins', balance: 16 * 100 - 15 * 5 }]);
  });

  it('gives a new subscription to exactly one of two customers racing with different transactions of it', async () => {
    for (let round = 0; round < 5; round++) {
      const lineageId = `contested-lineage-${kind}-${round}`;
      const start = new Date(Date.now() - 40 * 86_400_000);
      const t1 = monthly(start, { lineageId, transactionId: `${lineageId}-t1` });
      const t2 = monthly(new Date(start.getTime() + 30 * 86_400_000), { lineageId, transactionId: `${lineageId}-t2` });
      const [a, b] = await Promise.all([
        t.app.services.recorder.record(`alice-${round}`, [t1], new Date()),
        t.app.services.recorder.record(`bob-${round}`, [t2], new Date()),
      ]);
      const owners = [a, b].filter((o) => o.newTransactionIds.length === 1);
      expect(owners).toHaveLength(1);
      expect([a, b].filter((o) => o.foreignTransactionIds.length === 1)).toHaveLength(1);
      const owner = owners[0]!.customerId;
      expect(await count('select count(*)::int as n from subscription where lineage_id = ? and customer_id = ?', [lineageId, owner])).toBe(1);
      expect(await count('select count(distinct customer_id)::int as n from entitlement_grant where source_key = ? and superseded_at is null', [`sub:APP_STORE:${lineageId}`])).toBe(1);
      expect(await count('select count(*)::int as n from entitlement_grant where source_key = ? and superseded_at is null and customer_id <> ?', [`sub:APP_STORE:${lineageId}`, owner])).toBe(0);
    }
  });

  it('lets two customers submit one receipt in opposite orders without deadlock', async () => {
    for (let round = 0; round < 5; round++) {
      const p1 = purchase({ productId: 'com.example.app.no_ads', transactionId: `receipt-${kind}-${round}-a` });
      const p2 = purchase({ productId: 'com.example.app.season_pass', transactionId: `receipt-${kind}-${round}-b` });
      const [x, y] = await Promise.all([
        t.app.services.recorder.record(`x-${round}`, [p1, p2], new Date()),
        t.app.services.recorder.record(`y-${round}`, [p2, p1], new Date()),
      ]);
      // One of them owns both transactions, the other none.
      expect([x.newTransactionIds.length, y.newTransactionIds.length].sort()).toEqual([0, 2]);
      expect([x.foreignTransactionIds.length, y.foreignTransactionIds.length].sort()).toEqual([0, 2]);
    }
  });
});
