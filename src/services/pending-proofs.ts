// Proofs the store could not judge yet are kept here with their customer and retried with backoff until the
// store gives a definitive answer: nothing a customer submitted is dropped because a store was down.
import { createHash, randomUUID } from 'node:crypto';
import { AppError, type ReceiptReason } from '../domain/errors.js';
import type { Orm } from '../persistence/orm.js';
import { toDate } from '../persistence/snapshot-codec.js';
import type { PurchaseProof } from '../stores/adapter.js';
import { DEFAULT_JOB_TIMING, leaseEnd, nextAttemptAt, type JobTiming } from '../domain/job-timing.js';

type Row = Record<string, unknown>;
/** Runs one SQL statement: the ORM's connection, or the entity manager of an open transaction. */
type Sql = { execute(sql: string, params: unknown[]): Promise<unknown> };

/** Advisory lock class of a customer's kept proofs (the key within it is a hash of the appUserId). */
const PENDING_PROOF_LOCK = 735_120;

export interface PendingProofRow {
  id: string;
  appUserId: string;
  proof: PurchaseProof;
  orderId: string | null;
  attempts: number;
  reason: string;
  createdAt: Date;
}

/** The key a proof is kept under: Google's purchase token (notifications name it), else a digest. */
export function proofKeyOf(proof: PurchaseProof): string {
  if (proof.store === 'PLAY_STORE') return `token:${proof.purchaseToken}`;
  const material = proof.signedTransaction ?? `${proof.appReceipt ?? ''}|${proof.transactionId ?? ''}`;
  return `sha256:${createHash('sha256').update(material).digest('hex')}`;
}

/** Receipts larger than this are kept without their bytes when refused (a garbage flood must not fill the disk). */
const MAX_KEPT_RECEIPT_CHARS = 100_000;

/**
 * Automatic verifications of one kept proof before the retry job gives up on it (with the default backoff, 1 minute
 * doubling to 6 hours, about two weeks). It is kept, refused with its last reason, and verified again whenever it
 * is submitted again: apps resubmit unfinished transactions at every launch. A proof held back by this server's own
 * settings (STORE_AUTH_FAILED, a store not configured) is never given up on: it is not the proof's fault.
 */
export const MAX_AUTOMATIC_ATTEMPTS = 60;
/**
 * Proofs one customer may have waiting for one store that could not answer yet: beyond it a new one is refused,
 * not kept. Payments the store itself reports as pending, and granted proofs kept for a re-check, do not count.
 */
export const MAX_PENDING_PROOFS_PER_CUSTOMER = 20;
/** Reasons a proof waits because its store could not answer: what the per-customer caps count. */
const WAITING_FOR_STORE = ['VERIFYING', 'STORE_UNAVAILABLE', 'STORE_AUTH_FAILED'];
/** Refused proofs kept per customer for support, newest first: a flood of garbage replaces itself, not the disk. */
export const MAX_REFUSED_PROOFS_PER_CUSTOMER = 50;
/** Bytes of proof text one customer may have waiting for their store (a legacy receipt can be 4 MB). */
export const MAX_PENDING_PROOF_BYTES_PER_CUSTOMER = 8 * 1024 * 1024;

export interface KeptProofView {
  id: string;
  store: PurchaseProof['store'];
  /** Known before verification only for Google (the app names it). */
  productId: string | null;
  status: 'PENDING' | 'REJECTED';
  reason: string;
  message: string | null;
  attempts: number;
  submittedAt: Date;
  updatedAt: Date;
  nextAttemptAt: Date | null;
}

export class PendingProofs {
  constructor(
    private readonly orm: Orm,
    private readonly timing: JobTiming = DEFAULT_JOB_TIMING,
  ) {}

  private conn() {
    return this.orm.em.getConnection();
  }

  /**
   * Keeps (or refreshes) a proof for retry; the first customer to submit a proof keeps it. `attempts` is how
   * many verifications were tried so far: a retry passes its count so the backoff grows, a fresh submission
   * by the app starts again at the shortest wait. A proof verified meanwhile (by another instance's retry) stays
   * verified: a slower attempt's failure does not bring it back.
   */
  async keep(appUserId: string, proof: PurchaseProof, orderId: string | null, reason: ReceiptReason, message: string, now: Date, attempts = 1): Promise<void> {
    await this.conn().execute(
      `insert into pending_proof (id, store, proof_key, app_user_id, proof, order_id, status, reason, attempts, next_attempt_at, last_error, created_at, updated_at)
       values (?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, now(), now())
       on conflict (store, proof_key) do update set status = 'PENDING', reason = excluded.reason, last_error = excluded.last_error,
         attempts = greatest(pending_proof.attempts, excluded.attempts), next_attempt_at = excluded.next_attempt_at, updated_at = now()
         where pending_proof.status <> 'VERIFIED'`,
      [randomUUID(), proof.store, proofKeyOf(proof), appUserId, JSON.stringify(proof), orderId, reason, attempts, nextAttemptAt(now, attempts, this.timing), message],
    );
  }

  /**
   * Keeps a proof before its store is asked, so a crash during the store call cannot lose it: the retry job
   * picks it up once the lease ends, unless the request finishes first (and records the store's answer). A proof
   * already verified stays as it is (its purchase is recorded; a replay by someone else must not touch it); a
   * refused one is tried again, with the bytes just submitted (a large refused receipt was kept without them) and a
   * fresh round of automatic attempts.
   */
  async markVerifying(appUserId: string, proof: PurchaseProof, orderId: string | null, now: Date, sql: Sql = this.conn()): Promise<void> {
    await sql.execute(
      `insert into pending_proof (id, store, proof_key, app_user_id, proof, order_id, status, reason, attempts, next_attempt_at, last_error, created_at, updated_at)
       values (?, ?, ?, ?, ?, ?, 'PENDING', 'VERIFYING', 0, ?, null, now(), now())
       on conflict (store, proof_key) do update set status = 'PENDING', reason = excluded.reason, last_error = null, next_attempt_at = excluded.next_attempt_at,
         proof = excluded.proof, attempts = 0, updated_at = now()
         where pending_proof.status = 'REJECTED'`,
      [randomUUID(), proof.store, proofKeyOf(proof), appUserId, JSON.stringify(proof), orderId, leaseEnd(now, this.timing)],
    );
  }

  /**
   * A fresh submission: kept before its store is asked (markVerifying), within the customer's caps (assertRoomFor).
   * Both run under a lock on the customer, so concurrent submissions cannot together overshoot the caps.
   */
  async admit(appUserId: string, proof: PurchaseProof, orderId: string | null, now: Date): Promise<void> {
    await this.orm.em.fork().transactional(async (em) => {
      await em.execute('select pg_advisory_xact_lock(?, hashtext(?))', [PENDING_PROOF_LOCK, appUserId]);
      await this.assertRoomFor(appUserId, proof, em);
      await this.markVerifying(appUserId, proof, orderId, now, em);
    });
  }

  /**
   * Throws TOO_MANY_PENDING_PROOFS when keeping this proof would take the customer past the proofs or bytes one
   * customer may have waiting for their store. A proof already kept pending or verified passes: its resubmission
   * writes no new bytes. A refused one counts as new, since retrying it keeps its bytes again.
   */
  async assertRoomFor(appUserId: string, proof: PurchaseProof, sql: Sql = this.conn()): Promise<void> {
    const [row] = (await sql.execute(
      `select exists(select 1 from pending_proof where store = ? and proof_key = ? and status <> 'REJECTED') as kept,
         count(*) as pending, coalesce(sum(pg_column_size(proof)), 0) as bytes
       from pending_proof where app_user_id = ? and store = ? and status = 'PENDING' and reason in (${WAITING_FOR_STORE.map(() => '?').join(', ')})`,
      [proof.store, proofKeyOf(proof), appUserId, proof.store, ...WAITING_FOR_STORE],
    )) as Row[];
    if (row?.kept === true) return;
    const pending = Number(row?.pending ?? 0);
    const bytes = Number(row?.bytes ?? 0);
    const size = Buffer.byteLength(JSON.stringify(proof));
    if (pending >= MAX_PENDING_PROOFS_PER_CUSTOMER) {
      throw new AppError(
        'TOO_MANY_PENDING_PROOFS',
        `${MAX_PENDING_PROOFS_PER_CUSTOMER} purchase proofs of this customer are waiting for their store, the most one customer may have: this one was not kept; submit it again once they are verified`,
        { limit: MAX_PENDING_PROOFS_PER_CUSTOMER, pending },
      );
    }
    if (bytes + size > MAX_PENDING_PROOF_BYTES_PER_CUSTOMER) {
      throw new AppError(
        'TOO_MANY_PENDING_PROOFS',
        `this proof (${size} bytes) would take this customer's proofs waiting for their store past ${MAX_PENDING_PROOF_BYTES_PER_CUSTOMER / 1024 / 1024} MiB, the most one customer may have (${bytes} bytes now): it was not kept; submit it again once they are verified`,
        { limitBytes: MAX_PENDING_PROOF_BYTES_PER_CUSTOMER, pendingBytes: bytes, proofBytes: size },
      );
    }
  }

  /**
   * Stops retrying a kept proof the store could not judge in `attempts` tries: refused with its last reason, bytes
   * and all, so support sees it and a resubmission verifies it again (markVerifying reopens it).
   */
  async giveUp(proof: PurchaseProof, reason: string, message: string, attempts: number): Promise<void> {
    await this.conn().execute(
      `update pending_proof set status = 'REJECTED', reason = ?, last_error = ?, updated_at = now() where store = ? and proof_key = ? and status = 'PENDING'`,
      [reason, `gave up after ${attempts} automatic attempts, the last: ${message}. The proof is kept; submitting it again (apps resubmit unfinished transactions at every launch) verifies it again`, proof.store, proofKeyOf(proof)],
    );
  }

  /**
   * Keeps a proof the store definitively refused, with its reason, for support. A proof another customer had
   * verified keeps that record. Very large legacy receipts are kept without their bytes, and a customer keeps
   * only the newest MAX_REFUSED_PROOFS_PER_CUSTOMER refused proofs.
   */
  async reject(
    appUserId: string,
    proof: PurchaseProof,
    orderId: string | null,
    reason: ReceiptReason,
    message: string,
    now: Date,
    options: { keepReceipt?: boolean } = {},
  ): Promise<void> {
    const omit = proof.store === 'APP_STORE' && proof.appReceipt !== null && (options.keepReceipt === false || proof.appReceipt.length > MAX_KEPT_RECEIPT_CHARS);
    const kept = omit ? { ...proof, appReceipt: null, appReceiptOmitted: true } : proof;
    await this.conn().execute(
      `insert into pending_proof (id, store, proof_key, app_user_id, proof, order_id, status, reason, attempts, next_attempt_at, last_error, created_at, updated_at)
       values (?, ?, ?, ?, ?, ?, 'REJECTED', ?, 1, ?, ?, now(), now())
       on conflict (store, proof_key) do update set status = 'REJECTED', reason = excluded.reason, last_error = excluded.last_error, proof = excluded.proof, updated_at = now()
         where pending_proof.status <> 'VERIFIED'`,
      [randomUUID(), proof.store, proofKeyOf(proof), appUserId, JSON.stringify(kept), orderId, reason, now, message],
    );
    await this.conn().execute(
      // Only refusals: a proof given up on after its store kept failing (kept with that reason) is never pruned.
      `delete from pending_proof where id in (
         select id from pending_proof where app_user_id = ? and status = 'REJECTED' and reason not in (${WAITING_FOR_STORE.map(() => '?').join(', ')})
         order by created_at desc offset ?)`,
      [appUserId, ...WAITING_FOR_STORE, MAX_REFUSED_PROOFS_PER_CUSTOMER],
    );
  }

  /** A customer's kept proofs with the given status, newest first: what is still being verified, or was refused. */
  async ofCustomer(appUserId: string, status: 'PENDING' | 'REJECTED', limit = 50): Promise<KeptProofView[]> {
    const rows = (await this.conn().execute(
      `select id, store, proof, reason, last_error, attempts, next_attempt_at, created_at, updated_at from pending_proof
       where app_user_id = ? and status = ? order by created_at desc limit ?`,
      [appUserId, status, limit],
    )) as Row[];
    return rows.map((r) => {
      const proof = (typeof r.proof === 'string' ? JSON.parse(r.proof) : r.proof) as PurchaseProof;
      return {
        id: r.id as string,
        store: r.store as PurchaseProof['store'],
        productId: proof.store === 'PLAY_STORE' ? proof.productId : null,
        status,
        reason: r.reason as string,
        message: (r.last_error as string | null) ?? null,
        attempts: Number(r.attempts),
        submittedAt: toDate(r.created_at)!,
        updatedAt: toDate(r.updated_at)!,
        nextAttemptAt: status === 'PENDING' ? toDate(r.next_attempt_at) : null,
      };
    });
  }

  /** Records the store's definitive answer for a kept proof (if one was kept). */
  async resolve(proof: PurchaseProof, status: 'VERIFIED' | 'REJECTED', reason: string): Promise<void> {
    await this.conn().execute(
      `update pending_proof set status = ?, reason = ?, updated_at = now() where store = ? and proof_key = ? and status = 'PENDING'`,
      [status, reason, proof.store, proofKeyOf(proof)],
    );
  }

  /** Records Google's definitive answer for a kept proof of this purchase token (notifications know only the token). */
  async resolveGoogleToken(token: string, status: 'VERIFIED' | 'REJECTED', reason: string): Promise<void> {
    await this.resolve({ store: 'PLAY_STORE', packageName: null, productId: '', purchaseToken: token, originalJson: null, signature: null }, status, reason);
  }

  /** Leases up to `limit` due proofs for a retry (the lease is the next attempt time). */
  async claimDue(now: Date, limit: number): Promise<PendingProofRow[]> {
    const rows = (await this.conn().execute(
      `update pending_proof set attempts = attempts + 1, next_attempt_at = ?, updated_at = now()
       where id in (select id from pending_proof where status = 'PENDING' and next_attempt_at <= ? order by next_attempt_at limit ? for update skip locked)
       returning id, app_user_id, proof, order_id, attempts, reason, created_at`,
      [leaseEnd(now, this.timing), now, limit],
    )) as Row[];
    return rows.map((r) => ({
      id: r.id as string,
      appUserId: r.app_user_id as string,
      proof: (typeof r.proof === 'string' ? JSON.parse(r.proof) : r.proof) as PurchaseProof,
      orderId: (r.order_id as string | null) ?? null,
      attempts: Number(r.attempts),
      reason: r.reason as string,
      createdAt: toDate(r.created_at)!,
    }));
  }

  async scheduleRetry(id: string, attempts: number, reason: string, message: string, now: Date): Promise<void> {
    await this.conn().execute('update pending_proof set next_attempt_at = ?, reason = ?, last_error = ?, updated_at = now() where id = ?', [
      nextAttemptAt(now, attempts, this.timing),
      reason,
      message,
      id,
    ]);
  }

  /**
   * Deletes verified proofs not submitted again for `retentionMs` (their purchases are recorded; apps resubmit the
   * same proof on every launch, and legacy receipts are large). Pending and refused proofs stay.
   */
  async pruneVerified(now: Date, retentionMs: number, limit = 10_000): Promise<{ deleted: number }> {
    if (retentionMs <= 0) return { deleted: 0 };
    const rows = (await this.conn().execute(
      `delete from pending_proof where id in (select id from pending_proof where status = 'VERIFIED' and updated_at < ? limit ?) returning id`,
      [new Date(now.getTime() - retentionMs), limit],
    )) as Row[];
    return { deleted: rows.length };
  }

  /** Who submitted a Google purchase token that is still pending, if anyone. */
  async ownerOfToken(token: string): Promise<string | null> {
    const rows = (await this.conn().execute(`select app_user_id from pending_proof where store = 'PLAY_STORE' and proof_key = ? order by created_at limit 1`, [
      `token:${token}`,
    ])) as Row[];
    return (rows[0]?.app_user_id as string | undefined) ?? null;
  }
}
