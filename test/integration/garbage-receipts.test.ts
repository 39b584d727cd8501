// Garbage and unverifiable Apple receipts, end to end through GraphQL against the fake App Store on loopback, on
// PostgreSQL and on PGlite: a receipt that cannot be one is refused without asking Apple, Apple's 21002 after the
// sandbox fallback is a refusal, a proof Apple never judged is given up on (kept) after its last automatic attempt,
// and one customer cannot fill the table with proofs waiting for their store.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkcs7Container } from '../fakes/app-store.js';
import { customerOf, NO_ADS, startAppleApp, submitApple, type AppleTestApp } from '../support/apple.js';
import { DATABASE_KINDS } from '../support/databases.js';
import { MAX_AUTOMATIC_ATTEMPTS, MAX_PENDING_PROOF_BYTES_PER_CUSTOMER, MAX_PENDING_PROOFS_PER_CUSTOMER, MAX_REFUSED_PROOFS_PER_CUSTOMER } from '../../src/services/pending-proofs.js';

const SUBMIT = `mutation($input: SubmitReceiptInput!) { submitReceipt(input: $input) { status reason message } }`;
const RESTORE = `mutation($input: RestorePurchasesInput!) { restorePurchases(input: $input) { restoredTransactionIds pending { reason } rejected { reason message } } }`;
const KEPT = `query($id: String!) { customer(appUserId: $id) {
  pendingPurchases { reason message attempts nextAttemptAt }
  rejectedProofs { reason message attempts }
} }`;
const HOUR = 3_600_000;
/** Just under the API's 4,000,000 characters for a receipt: two fit in a customer's pending bytes, three do not. */
const BIG_RECEIPT_BYTES = 2_900_000;

interface KeptProof {
  reason: string;
  message: string | null;
  attempts: number;
}

async function keptProofs(t: AppleTestApp, appUserId: string): Promise<{ pendingPurchases: KeptProof[]; rejectedProofs: KeptProof[] }> {
  const res = await t.server(KEPT, { id: appUserId });
  if (res.errors) throw new Error(`customer failed: ${JSON.stringify(res.errors)}`);
  return res.data!.customer as { pendingPurchases: KeptProof[]; rejectedProofs: KeptProof[] };
}

/** What the table holds for a customer: rows, their status, and the bytes of their proofs. */
async function rowsOf(t: AppleTestApp, appUserId: string): Promise<{ status: string; reason: string; attempts: number; bytes: number; receiptChars: number | null }[]> {
  const rows = (await t.app.services.orm.em.getConnection().execute(
    `select status, reason, attempts, octet_length(proof::text) as bytes, length(proof->>'appReceipt') as receipt_chars from pending_proof where app_user_id = ? order by created_at`,
    [appUserId],
  )) as Record<string, unknown>[];
  return rows.map((r) => ({
    status: r.status as string,
    reason: r.reason as string,
    attempts: Number(r.attempts),
    bytes: Number(r.bytes),
    receiptChars: r.receipt_chars == null ? null : Number(r.receipt_chars),
  }));
}

async function tableBytes(t: AppleTestApp): Promise<number> {
  const [row] = (await t.app.services.orm.em.getConnection().execute(`select pg_total_relation_size('pending_proof') as size`)) as { size: unknown }[];
  return Number(row!.size);
}

const verifyReceiptCalls = (t: AppleTestApp): number => t.fake.calls.filter((c) => c.path.endsWith('verifyReceipt')).length;

/** Base64 of random bytes: the alphabet is right, but it is no PKCS#7 container. */
const randomBase64 = (bytes: number): string => randomBytes(bytes).toString('base64');
/** Shaped like an app receipt, but never issued: only Apple can tell. */
const bigContainer = (): string => pkcs7Container(randomBytes(BIG_RECEIPT_BYTES)).toString('base64');

describe.each(DATABASE_KINDS)('garbage Apple receipts on %s', (kind) => {
  let t: AppleTestApp;
  let users = 0;
  const user = (label: string) => `${label}-${kind}-${++users}`;

  beforeAll(async () => {
    t = await startAppleApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  describe('refused locally, Apple never asked', () => {
    const notBase64: [what: string, receipt: () => string][] = [
      ['random characters', () => `${Array.from(randomBytes(600), (b) => String.fromCharCode(0x21 + (b % 94))).join('')}!`],
      ['URL-safe base64', () => randomBytes(900).toString('base64url').replace(/^./, '-')],
      ['a percent-encoded receipt', () => encodeURIComponent(randomBase64(900) + '+/')],
      ['a StoreKit 2 signed transaction', () => 'eyJhbGciOiJFUzI1NiJ9.eyJ0cmFuc2FjdGlvbklkIjoiMSJ9.c2lnbmF0dXJl'],
    ];
    it.each(notBase64)('refuses %s as REJECTED / INVALID_RECEIPT', async (_what, receipt) => {
      const u = user('not-base64');
      const before = verifyReceiptCalls(t);
      const outcome = await submitApple(t, u, { appReceipt: receipt(), transactionId: '2000000000000001' });
      expect(outcome).toMatchObject({ status: 'REJECTED', reason: 'INVALID_RECEIPT' });
      expect(outcome.message).toMatch(/base64|signedTransaction/);
      expect(verifyReceiptCalls(t)).toBe(before);
      // Recorded for support, nothing waiting for Apple.
      const kept = await keptProofs(t, u);
      expect(kept.pendingPurchases).toEqual([]);
      expect(kept.rejectedProofs).toMatchObject([{ reason: 'INVALID_RECEIPT', message: outcome.message }]);
    });

    it('tells a StoreKit 2 signed transaction sent as a receipt where it belongs', async () => {
      const outcome = await submitApple(t, user('jws'), { appReceipt: 'eyJhbGciOiJFUzI1NiJ9.eyJ0cmFuc2FjdGlvbklkIjoiMSJ9.c2lnbmF0dXJl' });
      expect(outcome.message).toContain('apple.signedTransaction');
    });

    it('refuses random base64 and a cut-short receipt as REJECTED / INVALID_RECEIPT', async () => {
      const u = user('random-base64');
      const before = verifyReceiptCalls(t);
      const random = await submitApple(t, u, { appReceipt: randomBase64(3000), transactionId: '2000000000000002' });
      expect(random).toMatchObject({ status: 'REJECTED', reason: 'INVALID_RECEIPT' });
      expect(random.message).toContain('PKCS#7');
      const real = t.fake.appReceipt({ account: `acct-${u}`, environment: 'Production' });
      const cut = await submitApple(t, u, { appReceipt: real.slice(0, 60), transactionId: '2000000000000002' });
      expect(cut).toMatchObject({ status: 'REJECTED', reason: 'INVALID_RECEIPT' });
      expect(cut.message).toContain('cut short');
      expect(verifyReceiptCalls(t)).toBe(before);
    });

    it('keeps five 3.9 MB random receipts of one user in a few hundred bytes each', async () => {
      const u = user('flood');
      const [calls, size] = [verifyReceiptCalls(t), await tableBytes(t)];
      for (let i = 0; i < 5; i++) {
        expect(await submitApple(t, u, { appReceipt: randomBase64(BIG_RECEIPT_BYTES), transactionId: '2000000000000003' })).toMatchObject({
          status: 'REJECTED',
          reason: 'INVALID_RECEIPT',
        });
      }
      expect(verifyReceiptCalls(t)).toBe(calls);
      const rows = await rowsOf(t, u);
      expect(rows.map((r) => [r.status, r.reason, r.receiptChars])).toEqual(Array(5).fill(['REJECTED', 'INVALID_RECEIPT', null]));
      expect(rows.every((r) => r.bytes < 1_000)).toBe(true);
      // Not even written at full size first (dead rows would grow the table until a vacuum).
      expect((await tableBytes(t)) - size).toBeLessThan(1024 * 1024);
    });

    it('keeps at most 100,000 characters of a receipt Apple refused, and none of one that is no receipt', async () => {
      const u = user('refused-size');
      const small = pkcs7Container(randomBytes(60_000)).toString('base64'); // about 80,000 characters: kept
      const large = pkcs7Container(randomBytes(90_000)).toString('base64'); // about 120,000: kept without its bytes
      for (const appReceipt of [small, large]) expect(await submitApple(t, u, { appReceipt })).toMatchObject({ status: 'REJECTED' });
      await submitApple(t, u, { appReceipt: randomBase64(3_000) }); // garbage: the refusal is kept, the bytes are not
      expect((await rowsOf(t, u)).map((r) => r.receiptChars)).toEqual([small.length, null, null]);
    });

    it('restore refuses a garbage receipt the same way', async () => {
      const before = verifyReceiptCalls(t);
      const res = await t.server(RESTORE, { input: { appUserId: user('restore'), store: 'APP_STORE', apple: { appReceipt: randomBase64(2000) } } });
      expect(res.errors).toBeUndefined();
      expect(res.data!.restorePurchases).toMatchObject({ restoredTransactionIds: [], pending: [], rejected: [{ reason: 'INVALID_RECEIPT' }] });
      expect(verifyReceiptCalls(t)).toBe(before);
    });

    it('still verifies a real receipt, also wrapped in lines as apps send it', async () => {
      const u = user('real');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      const wrapped = t.fake.appReceipt({ account, environment: 'Production' }).replace(/(.{76})/g, '$1\r\n');
      const outcome = await submitApple(t, u, { appReceipt: wrapped, transactionId: tx.transactionId });
      expect(outcome).toMatchObject({ status: 'VERIFIED', reason: 'OK', transactionIds: [tx.transactionId] });
    });
  });

  describe("Apple's 21002", () => {
    it('is REJECTED / INVALID_RECEIPT when production and the sandbox both say malformed, and a resubmission is verified', async () => {
      const u = user('21002');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      const receipt = t.fake.appReceipt({ account, environment: 'Production' });
      const before = t.fake.calls.length;
      t.fake.failVerifyReceipt({ status: 21002 }, 2);
      const outcome = await submitApple(t, u, { appReceipt: receipt, transactionId: tx.transactionId });
      expect(outcome).toMatchObject({ status: 'REJECTED', reason: 'INVALID_RECEIPT', message: 'Apple says the receipt data is malformed (21002)' });
      expect(t.fake.calls.slice(before).map((c) => c.path)).toEqual(['/verifyReceipt', '/sandbox/verifyReceipt']);
      expect(await keptProofs(t, u)).toMatchObject({ pendingPurchases: [], rejectedProofs: [{ reason: 'INVALID_RECEIPT' }] });
      // Not retried by the job: a definitive answer.
      const calls = verifyReceiptCalls(t);
      await t.app.services.receipts.retryPending(new Date(Date.now() + 7 * 24 * HOUR));
      expect(verifyReceiptCalls(t)).toBe(calls);
      // The app submits it again at its next launch, and Apple reads it this time.
      expect(await submitApple(t, u, { appReceipt: receipt, transactionId: tx.transactionId })).toMatchObject({ status: 'VERIFIED' });
      expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
    });

    it('stays PENDING when production says 21002 of a receipt the sandbox recognises as production (21008)', async () => {
      const u = user('21002-once');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      t.fake.failVerifyReceipt({ status: 21002 }, 1, 'Production');
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
      expect(outcome).toMatchObject({ status: 'PENDING', reason: 'STORE_UNAVAILABLE' });
      expect((await keptProofs(t, u)).pendingPurchases).toHaveLength(1);
    });

    it('stays PENDING when the sandbox says 21002 of a receipt production recognised as a sandbox one (21007)', async () => {
      const u = user('21002-sandbox-hiccup');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Sandbox' });
      t.fake.failVerifyReceipt({ status: 21002 }, 1, 'Sandbox');
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Sandbox' }), transactionId: tx.transactionId });
      expect(outcome).toMatchObject({ status: 'PENDING', reason: 'STORE_UNAVAILABLE' });
    });

    it('leaves 21005 a temporary error (PENDING)', async () => {
      const u = user('21005');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      t.fake.failVerifyReceipt({ status: 21005 });
      const outcome = await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account, environment: 'Production' }), transactionId: tx.transactionId });
      expect(outcome).toMatchObject({ status: 'PENDING', reason: 'STORE_UNAVAILABLE' });
      expect(outcome.message).toContain('21005');
    });
  });

  describe('per customer', () => {
    it(`refuses a proof past ${MAX_PENDING_PROOFS_PER_CUSTOMER} waiting for Apple, without keeping it or asking Apple; resubmissions and other customers pass`, async () => {
      const u = user('many');
      const account = `acct-${u}`;
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
      // Every receipt is new bytes for the same purchase: a distinct proof each.
      const receipts = Array.from({ length: MAX_PENDING_PROOFS_PER_CUSTOMER + 1 }, () => t.fake.appReceipt({ account, environment: 'Production' }));
      t.fake.failVerifyReceipt({ httpStatus: 503 }, MAX_PENDING_PROOFS_PER_CUSTOMER);
      for (const receipt of receipts.slice(0, MAX_PENDING_PROOFS_PER_CUSTOMER)) {
        expect(await submitApple(t, u, { appReceipt: receipt, transactionId: tx.transactionId })).toMatchObject({ status: 'PENDING' });
      }
      const calls = verifyReceiptCalls(t);
      const res = await t.server(SUBMIT, { input: { appUserId: u, store: 'APP_STORE', apple: { appReceipt: receipts.at(-1), transactionId: tx.transactionId } } });
      expect(res.status).toBe(200);
      expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'TOO_MANY_PENDING_PROOFS', limit: MAX_PENDING_PROOFS_PER_CUSTOMER });
      expect(res.errors?.[0]?.message).toContain(String(MAX_PENDING_PROOFS_PER_CUSTOMER));
      expect(verifyReceiptCalls(t)).toBe(calls);
      expect(await rowsOf(t, u)).toHaveLength(MAX_PENDING_PROOFS_PER_CUSTOMER);

      // Another customer is not held back.
      const other = user('other');
      const otherTx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account: `acct-${other}`, environment: 'Production' });
      expect(await submitApple(t, other, { appReceipt: t.fake.appReceipt({ account: `acct-${other}`, environment: 'Production' }), transactionId: otherTx.transactionId })).toMatchObject({
        status: 'VERIFIED',
      });

      // A proof already kept is the same row: its resubmission passes (and Apple answers now), which makes room.
      expect(await submitApple(t, u, { appReceipt: receipts[0], transactionId: tx.transactionId })).toMatchObject({ status: 'VERIFIED' });
      expect(await submitApple(t, u, { appReceipt: receipts.at(-1), transactionId: tx.transactionId })).toMatchObject({ status: 'ALREADY_VERIFIED' });
      expect(await rowsOf(t, u)).toHaveLength(MAX_PENDING_PROOFS_PER_CUSTOMER + 1);
    });

    it(`refuses a proof that would take a customer past ${MAX_PENDING_PROOF_BYTES_PER_CUSTOMER / 1024 / 1024} MiB waiting for Apple`, async () => {
      const u = user('bytes');
      t.fake.failVerifyReceipt({ httpStatus: 503 }, 2);
      for (let i = 0; i < 2; i++) expect(await submitApple(t, u, { appReceipt: bigContainer() })).toMatchObject({ status: 'PENDING', reason: 'STORE_UNAVAILABLE' });
      const calls = verifyReceiptCalls(t);
      const before = await rowsOf(t, u);
      expect(before.map((r) => r.status)).toEqual(['PENDING', 'PENDING']);

      const res = await t.server(SUBMIT, { input: { appUserId: u, store: 'APP_STORE', apple: { appReceipt: bigContainer() } } });
      expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'TOO_MANY_PENDING_PROOFS', limitBytes: MAX_PENDING_PROOF_BYTES_PER_CUSTOMER });
      expect(res.errors?.[0]?.message).toContain('8 MiB');
      expect(await rowsOf(t, u)).toEqual(before);
      expect(verifyReceiptCalls(t)).toBe(calls);

      // A small proof still fits, and another customer's large one is kept.
      const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account: `acct-${u}`, environment: 'Production' });
      expect(await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account: `acct-${u}`, environment: 'Production' }), transactionId: tx.transactionId })).toMatchObject({
        status: 'VERIFIED',
      });
      t.fake.failVerifyReceipt({ httpStatus: 503 });
      expect(await submitApple(t, user('bytes-other'), { appReceipt: bigContainer() })).toMatchObject({ status: 'PENDING' });
    });
  });
});

// Its own service and database: the retry job claims every due proof, so no other test's proofs may be due.
describe.each(DATABASE_KINDS)('retries of a kept Apple receipt on %s', (kind) => {
  let t: AppleTestApp;
  let users = 0;
  const user = (label: string) => `${label}-${kind}-${++users}`;
  beforeAll(async () => {
    t = await startAppleApp(kind);
  });
  afterAll(async () => {
    await t?.close();
  });

  it(`gives up after ${MAX_AUTOMATIC_ATTEMPTS} attempts: kept as REJECTED for support, and a resubmission retries it`, async () => {
    const u = `retried-${kind}`;
    const account = `acct-${u}`;
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account, environment: 'Production' });
    const receipt = t.fake.appReceipt({ account, environment: 'Production' });
    t.fake.failVerifyReceipt({ httpStatus: 503 }, MAX_AUTOMATIC_ATTEMPTS);
    expect(await submitApple(t, u, { appReceipt: receipt, transactionId: tx.transactionId })).toMatchObject({ status: 'PENDING', reason: 'STORE_UNAVAILABLE' });

    // Each run is later than the longest backoff (6 hours, ×1.5 at most), so the proof is due every time.
    let now = Date.now();
    for (let attempt = 2; attempt < MAX_AUTOMATIC_ATTEMPTS; attempt++) {
      now += 10 * HOUR;
      expect(await t.app.services.receipts.retryPending(new Date(now))).toEqual({ verified: 0, rejected: 0, stillPending: 1 });
    }
    expect((await keptProofs(t, u)).pendingPurchases).toMatchObject([{ reason: 'STORE_UNAVAILABLE', attempts: MAX_AUTOMATIC_ATTEMPTS - 1 }]);
    now += 10 * HOUR;
    expect(await t.app.services.receipts.retryPending(new Date(now))).toEqual({ verified: 0, rejected: 1, stillPending: 0 });

    const kept = await keptProofs(t, u);
    expect(kept.pendingPurchases).toEqual([]);
    expect(kept.rejectedProofs).toMatchObject([{ reason: 'STORE_UNAVAILABLE', attempts: MAX_AUTOMATIC_ATTEMPTS }]);
    expect(kept.rejectedProofs[0]!.message).toContain(`gave up after ${MAX_AUTOMATIC_ATTEMPTS} automatic attempts`);
    expect(kept.rejectedProofs[0]!.message).toContain('submitting it again');
    // Kept with its bytes, and no longer retried automatically.
    expect((await rowsOf(t, u)).map((r) => r.receiptChars)).toEqual([receipt.length]);
    const calls = verifyReceiptCalls(t);
    expect(await t.app.services.receipts.retryPending(new Date(now + 30 * 24 * HOUR))).toEqual({ verified: 0, rejected: 0, stillPending: 0 });
    expect(verifyReceiptCalls(t)).toBe(calls);

    // The app submits it again while Apple is still down: pending again, with a fresh round of attempts ...
    t.fake.failVerifyReceipt({ httpStatus: 503 });
    expect(await submitApple(t, u, { appReceipt: receipt, transactionId: tx.transactionId })).toMatchObject({ status: 'PENDING' });
    expect((await keptProofs(t, u)).pendingPurchases).toMatchObject([{ reason: 'STORE_UNAVAILABLE', attempts: 1 }]);
    // ... and the retry job verifies it once Apple answers.
    expect(await t.app.services.receipts.retryPending(new Date(now + 31 * 24 * HOUR))).toEqual({ verified: 1, rejected: 0, stillPending: 0 });
    expect((await customerOf(t, u)).entitlements).toMatchObject([{ identifier: 'no_ads', isActive: true }]);
    expect(await keptProofs(t, u)).toEqual({ pendingPurchases: [], rejectedProofs: [] });
  });

  it('holds the pending cap under concurrent submissions from one customer', async () => {
    const u = user('race');
    t.fake.failVerifyReceipt({ httpStatus: 503 }, 100);
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => t.server(SUBMIT, { input: { appUserId: u, store: 'APP_STORE', apple: { appReceipt: pkcs7Container(randomBytes(200)).toString('base64') } } })),
    );
    const pending = answers.filter((a) => a.data?.submitReceipt?.status === 'PENDING').length;
    const refused = answers.filter((a) => a.errors?.[0]?.extensions?.code === 'TOO_MANY_PENDING_PROOFS').length;
    expect(pending).toBe(MAX_PENDING_PROOFS_PER_CUSTOMER);
    expect(refused).toBe(40 - MAX_PENDING_PROOFS_PER_CUSTOMER);
    expect((await rowsOf(t, u)).filter((r) => r.status === 'PENDING')).toHaveLength(MAX_PENDING_PROOFS_PER_CUSTOMER);
    t.fake.clearVerifyReceiptFailures();
  });

  it('counts only proofs waiting for a store that could not answer: payments the store reports pending do not block', async () => {
    const u = user('slow-payments');
    const conn = t.app.services.orm.em.getConnection();
    for (let i = 0; i < MAX_PENDING_PROOFS_PER_CUSTOMER + 5; i++) {
      await conn.execute(
        `insert into pending_proof (id, store, proof_key, app_user_id, proof, status, reason, attempts, next_attempt_at, created_at, updated_at)
         values (gen_random_uuid(), 'APP_STORE', ?, ?, '{}', 'PENDING', 'PURCHASE_PENDING', 1, now(), now(), now())`,
        [`sha256:slow-${u}-${i}`, u],
      );
    }
    const tx = t.fake.buy({ productId: NO_ADS, type: 'Non-Consumable', account: `acct-${u}`, environment: 'Production' });
    expect(await submitApple(t, u, { appReceipt: t.fake.appReceipt({ account: `acct-${u}`, environment: 'Production' }), transactionId: tx.transactionId })).toMatchObject({
      status: 'VERIFIED',
    });
  });

  it('keeps the newest refused proofs of a customer, without the bytes of garbage, and never prunes one given up on', async () => {
    const u = user('refused-flood');
    const conn = t.app.services.orm.em.getConnection();
    // A proof given up on after its store kept failing: kept with its reason, never pruned.
    await conn.execute(
      `insert into pending_proof (id, store, proof_key, app_user_id, proof, status, reason, attempts, next_attempt_at, created_at, updated_at)
       values (gen_random_uuid(), 'APP_STORE', ?, ?, '{"store":"APP_STORE","appReceipt":"kept"}', 'REJECTED', 'STORE_UNAVAILABLE', 60, now(), now() - interval '1 day', now())`,
      [`sha256:given-up-${u}`, u],
    );
    for (let i = 0; i < 70; i++) {
      expect(await submitApple(t, u, { appReceipt: randomBase64(3000) })).toMatchObject({ status: 'REJECTED', reason: 'INVALID_RECEIPT' });
    }
    const rows = await rowsOf(t, u);
    expect(rows.filter((r) => r.reason === 'INVALID_RECEIPT')).toHaveLength(MAX_REFUSED_PROOFS_PER_CUSTOMER);
    expect(rows.filter((r) => r.reason === 'INVALID_RECEIPT').every((r) => r.receiptChars === null)).toBe(true);
    expect(rows.filter((r) => r.reason === 'STORE_UNAVAILABLE')).toHaveLength(1);
  });
});
