// Spending consumable credits over GraphQL: never below zero, once per idempotency key, under concurrency.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_KINDS } from '../support/databases.js';
import { purchase } from '../support/purchases.js';
import { startTestApp, type TestApp } from '../support/test-app.js';

const SPEND = `mutation($input: SpendCreditsInput!) { spendCredits(input: $input) { currency amount balance replayed } }`;
const BALANCE = `query($id: String!) { customer(appUserId: $id) { creditBalances { currency balance } } }`;

describe.each(DATABASE_KINDS)('credits on %s', (kind) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  const give = (appUserId: string, coins100Packs: number, tx: string) =>
    t.app.services.recorder.record(appUserId, [purchase({ store: 'PLAY_STORE', productId: 'coins_100', transactionId: tx, quantity: coins100Packs })], new Date());

  const spend = (appUserId: string, amount: number, idempotencyKey: string, currency = 'coins') =>
    t.server(SPEND, { input: { appUserId, currency, amount, idempotencyKey } });

  it('lets exactly 10 of 20 concurrent spends through when the balance covers 10', async () => {
    await give('racer', 1, `race-${kind}`);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => spend('racer', 10, `race-${i}`)));
    const ok = results.filter((r) => !r.errors);
    const refused = results.filter((r) => r.errors);
    expect(ok).toHaveLength(10);
    expect(refused).toHaveLength(10);
    for (const r of refused) expect(r.errors![0]!.extensions!.code).toBe('INSUFFICIENT_CREDITS');
    expect(ok.map((r) => r.data!.spendCredits.balance).sort((a: number, b: number) => a - b)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    const balance = await t.server(BALANCE, { id: 'racer' });
    expect(balance.data!.customer.creditBalances).toEqual([{ currency: 'coins', balance: 0 }]);
    const [ledger] = await t.app.orm.em.getConnection().execute(
      `select count(*)::int as n, sum(amount)::int as total, min(balance_after)::int as lowest from credit_ledger l
       join customer c on c.id = l.customer_id where c.app_user_id = 'racer'`,
    );
    expect(ledger).toEqual({ n: 11, total: 0, lowest: 0 });
  });

  it('spends once per idempotency key, even when the same key races', async () => {
    await give('retrier', 1, `retry-${kind}`);
    const results = await Promise.all(Array.from({ length: 8 }, () => spend('retrier', 30, 'same-key')));
    for (const r of results) expect(r.errors).toBeUndefined();
    expect(results.map((r) => r.data!.spendCredits.balance)).toEqual(Array(8).fill(70));
    expect(results.filter((r) => r.data!.spendCredits.replayed === false)).toHaveLength(1);
    const balance = await t.server(BALANCE, { id: 'retrier' });
    expect(balance.data!.customer.creditBalances).toEqual([{ currency: 'coins', balance: 70 }]);
  });

  it('refuses to reuse a key for a different spend', async () => {
    await give('reuser', 1, `reuse-${kind}`);
    expect((await spend('reuser', 5, 'k1')).errors).toBeUndefined();
    const res = await spend('reuser', 6, 'k1');
    expect(res.errors![0]!.extensions!.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('refuses to spend more than the balance, or from a customer with none', async () => {
    await give('saver', 1, `saver-${kind}`);
    const res = await spend('saver', 101, 'too-much');
    expect(res.errors![0]!.extensions).toMatchObject({ code: 'INSUFFICIENT_CREDITS', balance: 100, currency: 'coins' });
    const none = await spend('stranger', 1, 'k');
    expect(none.errors![0]!.extensions).toMatchObject({ code: 'INSUFFICIENT_CREDITS', balance: 0 });
    const otherCurrency = await spend('saver', 1, 'gems', 'gems');
    expect(otherCurrency.errors![0]!.extensions).toMatchObject({ code: 'INSUFFICIENT_CREDITS', balance: 0 });
  });

  it.each([
    ['zero', 0],
    ['negative', -5],
  ])('rejects a %s amount with BAD_USER_INPUT', async (_n, amount) => {
    const res = await spend('saver', amount, `bad-${amount}`);
    expect(res.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
  });

  it('claws back refunded credits, and the balance may go negative after a refund', async () => {
    const tx = `refund-${kind}`;
    await give('refunder', 1, tx);
    expect((await spend('refunder', 60, 'buy-sword')).data!.spendCredits.balance).toBe(40);
    const refunded = purchase({
      store: 'PLAY_STORE',
      productId: 'coins_100',
      transactionId: tx,
      revokedAt: new Date(),
      revocationReason: 'REFUND',
      observedAt: new Date(Date.now() + 1000),
    });
    await t.app.services.recorder.record('refunder', [refunded], new Date());
    await t.app.services.recorder.record('refunder', [refunded], new Date());
    const balance = await t.server(BALANCE, { id: 'refunder' });
    expect(balance.data!.customer.creditBalances).toEqual([{ currency: 'coins', balance: -60 }]);
    const res = await spend('refunder', 1, 'after-refund');
    expect(res.errors![0]!.extensions!.code).toBe('INSUFFICIENT_CREDITS');
  });
});
