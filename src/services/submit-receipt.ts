// submitReceipt: verify a client's purchase proof with its store, record what the store confirms, and
// answer with the customer's entitlements. Nothing is granted on unverified input; a proof the store could
// not judge yet is kept and retried (PENDING), never dropped.
import type { Logger } from 'pino';
import { AppError, type ReceiptReason, type ReceiptStatus } from '../domain/errors.js';
import type { PurchaseProof, StoreAdapters } from '../stores/adapter.js';
import { MAX_AUTOMATIC_ATTEMPTS, type PendingProofs, type PendingProofRow } from './pending-proofs.js';
import type { PurchaseRecorder, RecordOutcome } from './purchase-recorder.js';
import type { StoreTaskRunner } from './store-tasks.js';

export interface SubmitReceiptCommand {
  appUserId: string;
  proof: PurchaseProof;
  orderId: string | null;
  now: Date;
}

export interface SubmitReceiptResult {
  status: ReceiptStatus;
  reason: ReceiptReason;
  message: string;
  transactionIds: string[];
}

export interface RestoreResult {
  /** Transactions this customer now holds (new, or already theirs). */
  restoredTransactionIds: string[];
  /** Of those, the ones moved here from another customer. */
  transferredTransactionIds: string[];
  /** Transactions that stay with another customer (transfer policy, or consumables). */
  inUseTransactionIds: string[];
  /** Proofs the store could not judge now: kept and verified later. */
  pending: { reason: ReceiptReason; message: string }[];
  rejected: { reason: ReceiptReason; message: string }[];
}

export class SubmitReceiptService {
  constructor(
    private readonly adapters: StoreAdapters,
    private readonly recorder: PurchaseRecorder,
    private readonly pending: PendingProofs,
    private readonly tasks: StoreTaskRunner,
    private readonly log: Logger,
  ) {}

  async submit(cmd: SubmitReceiptCommand): Promise<SubmitReceiptResult> {
    const adapter = this.adapters[cmd.proof.store];
    if (!adapter) {
      throw new AppError('STORE_NOT_CONFIGURED', `${cmd.proof.store} is not configured on this server`, { store: cmd.proof.store });
    }
    const malformed = await this.refuseMalformed(cmd.appUserId, cmd.proof, cmd.orderId, cmd.now);
    if (malformed) return { status: 'REJECTED', ...malformed, transactionIds: [] };
    return this.verifyAndRecord(cmd);
  }

  /** A proof its adapter can tell is garbage from its shape: recorded as refused (for support), the store never asked. */
  private async refuseMalformed(appUserId: string, proof: PurchaseProof, orderId: string | null, now: Date): Promise<{ reason: ReceiptReason; message: string } | null> {
    const problem = this.adapters[proof.store]?.shapeProblem?.(proof) ?? null;
    if (!problem) return null;
    // Garbage bytes help no one: the refusal and its reason are kept, the receipt is not.
    await this.pending.reject(appUserId, proof, orderId, problem.reason, problem.message, now, { keepReceipt: false });
    this.log.info({ store: proof.store, reason: problem.reason, appUserId }, `purchase proof rejected: ${problem.message}`);
    return problem;
  }

  /**
   * Restore purchases: re-verifies everything the proofs cover and attaches what the store confirms to this
   * customer (a purchase another customer holds moves only under the transfer policy; consumables never move).
   * Each proof is verified and recorded on its own, so one store being down does not hold the others back; a
   * proof past the customer's pending cap throws TOO_MANY_PENDING_PROOFS, after the ones before it were recorded.
   */
  async restore(appUserId: string, proofs: readonly PurchaseProof[], now: Date): Promise<RestoreResult> {
    const result: RestoreResult = { restoredTransactionIds: [], transferredTransactionIds: [], inUseTransactionIds: [], pending: [], rejected: [] };
    for (const proof of proofs) {
      const adapter = this.adapters[proof.store];
      if (!adapter) throw new AppError('STORE_NOT_CONFIGURED', `${proof.store} is not configured on this server`, { store: proof.store });
      const malformed = await this.refuseMalformed(appUserId, proof, null, now);
      if (malformed) {
        result.rejected.push(malformed);
        continue;
      }
      await this.pending.admit(appUserId, proof, null, now);
      const verification = await (adapter.restore ?? adapter.verify).call(adapter, proof);
      if (verification.status === 'PENDING') {
        await this.pending.keep(appUserId, proof, null, verification.reason, verification.message, now);
        result.pending.push({ reason: verification.reason, message: verification.message });
        continue;
      }
      if (verification.status === 'REJECTED') {
        await this.pending.reject(appUserId, proof, null, verification.reason, verification.message, now);
        result.rejected.push({ reason: verification.reason, message: verification.message });
        continue;
      }
      const recorded = await this.recorder.record(appUserId, verification.purchases, now, { followUps: verification.followUps, appReceipt: appReceiptOf(proof) });
      this.tasks.runSoon(recorded.queuedTaskIds);
      if (verification.recheckLater) await this.pending.keep(appUserId, proof, null, verification.recheckLater.reason, verification.recheckLater.message, now);
      else await this.pending.resolve(proof, 'VERIFIED', 'OK');
      result.restoredTransactionIds.push(...recorded.newTransactionIds, ...recorded.knownTransactionIds);
      result.transferredTransactionIds.push(...recorded.transferredTransactionIds);
      result.inUseTransactionIds.push(...recorded.foreignTransactionIds);
    }
    this.log.info({ appUserId, restored: result.restoredTransactionIds.length, transferred: result.transferredTransactionIds.length }, 'purchases restored');
    return result;
  }

  /**
   * Retries kept proofs that are due. Returns how many got a definitive answer; `rejected` includes the ones given
   * up on after MAX_AUTOMATIC_ATTEMPTS (kept, and verified again when submitted again).
   */
  async retryPending(now: Date, limit = 50): Promise<{ verified: number; rejected: number; stillPending: number }> {
    const counts = { verified: 0, rejected: 0, stillPending: 0 };
    for (const row of await this.pending.claimDue(now, limit)) {
      if (!this.adapters[row.proof.store]) {
        counts[await this.retryLater(row, 'STORE_UNAVAILABLE', `${row.proof.store} is not configured`, now, { ourFault: true })]++;
        continue;
      }
      try {
        const result = await this.verifyAndRecord({ appUserId: row.appUserId, proof: row.proof, orderId: row.orderId, now }, row.attempts);
        if (result.status === 'PENDING') counts.stillPending++;
        else if (result.status === 'REJECTED') counts.rejected++;
        else counts.verified++;
      } catch (err) {
        this.log.error({ err, pendingProof: row.id }, 'retrying a kept proof failed; it stays kept');
        counts[await this.retryLater(row, row.reason, (err as Error).message, now)]++;
      }
    }
    return counts;
  }

  /** The next automatic attempt for a claimed proof, unless it has had its last one. */
  private async retryLater(row: PendingProofRow, reason: string, message: string, now: Date, o: { ourFault?: boolean } = {}): Promise<'rejected' | 'stillPending'> {
    if (row.attempts >= MAX_AUTOMATIC_ATTEMPTS && !o.ourFault) {
      await this.pending.giveUp(row.proof, reason, message, row.attempts);
      this.log.warn({ store: row.proof.store, pendingProof: row.id, attempts: row.attempts, reason }, 'gave up retrying a kept proof; it is kept and verified again when submitted again');
      return 'rejected';
    }
    await this.pending.scheduleRetry(row.id, row.attempts, reason, message, now);
    return 'stillPending';
  }

  private async verifyAndRecord(cmd: SubmitReceiptCommand, attempts?: number): Promise<SubmitReceiptResult> {
    const adapter = this.adapters[cmd.proof.store]!;
    // A fresh submission is kept before the store is asked: if this process dies mid-call, the retry job still
    // has it. (A retry already holds its row under a lease.)
    if (attempts === undefined) await this.pending.admit(cmd.appUserId, cmd.proof, cmd.orderId, cmd.now);
    const verification = await adapter.verify(cmd.proof);
    const lastAttempt = attempts !== undefined && attempts >= MAX_AUTOMATIC_ATTEMPTS;
    // Our shared secret or key is wrong: the proof is not at fault, and is retried until the setting is fixed.
    if (verification.status === 'PENDING' && lastAttempt && verification.reason !== 'STORE_AUTH_FAILED') {
      await this.pending.giveUp(cmd.proof, verification.reason, verification.message, attempts);
      this.log.warn({ store: cmd.proof.store, reason: verification.reason, attempts, appUserId: cmd.appUserId }, 'gave up retrying a kept proof; it is kept and verified again when submitted again');
      return { status: 'REJECTED', reason: verification.reason, message: verification.message, transactionIds: [] };
    }
    if (verification.status === 'PENDING') {
      await this.pending.keep(cmd.appUserId, cmd.proof, cmd.orderId, verification.reason, verification.message, cmd.now, attempts ?? 1);
      this.log.info({ store: cmd.proof.store, reason: verification.reason, attempts }, 'purchase proof kept for a later verification');
      return { status: 'PENDING', reason: verification.reason, message: verification.message, transactionIds: [] };
    }
    if (verification.status === 'REJECTED') {
      await this.pending.reject(cmd.appUserId, cmd.proof, cmd.orderId, verification.reason, verification.message, cmd.now);
      this.log.info({ store: cmd.proof.store, reason: verification.reason, appUserId: cmd.appUserId }, `purchase proof rejected: ${verification.message}`);
      return { status: 'REJECTED', reason: verification.reason, message: verification.message, transactionIds: [] };
    }
    const transactionIds = verification.purchases.map((p) => p.transactionId);
    const recorded = await this.recorder.record(cmd.appUserId, verification.purchases, cmd.now, {
      followUps: verification.followUps,
      orderId: cmd.orderId,
      appReceipt: appReceiptOf(cmd.proof),
    });
    this.tasks.runSoon(recorded.queuedTaskIds);
    const result = { ...answerFor(recorded), transactionIds };
    if (result.status === 'REJECTED') {
      await this.pending.reject(cmd.appUserId, cmd.proof, cmd.orderId, result.reason, result.message, cmd.now);
    } else if (verification.recheckLater && !lastAttempt) {
      // Granted on what the store verified; kept so the retry job asks the store for the current state again
      // (after the last attempt the scheduled re-checks of stored subscriptions take over).
      const { reason, message } = verification.recheckLater;
      await this.pending.keep(cmd.appUserId, cmd.proof, cmd.orderId, reason, message, cmd.now, attempts ?? 1);
    } else {
      await this.pending.resolve(cmd.proof, 'VERIFIED', 'OK');
    }
    return result;
  }
}

const appReceiptOf = (proof: PurchaseProof): string | null => (proof.store === 'APP_STORE' ? proof.appReceipt : null);

/** The caller's answer for what recording a verified proof did. */
function answerFor(recorded: RecordOutcome): Omit<SubmitReceiptResult, 'transactionIds'> {
  if (recorded.transferredTransactionIds.length > 0) {
    return { status: 'VERIFIED', reason: 'TRANSFERRED', message: 'this purchase was moved here from another customer (transfer policy)' };
  }
  if (recorded.newTransactionIds.length > 0) return { status: 'VERIFIED', reason: 'OK', message: 'purchase verified and recorded' };
  if (recorded.knownTransactionIds.length > 0) {
    return { status: 'ALREADY_VERIFIED', reason: 'ALREADY_VERIFIED', message: 'this purchase was already recorded for this customer' };
  }
  if (recorded.unknownProductTransactionIds.length > 0 && recorded.foreignTransactionIds.length === 0) {
    return {
      status: 'REJECTED',
      reason: 'PRODUCT_NOT_IN_CATALOG',
      message: 'the store confirmed the purchase, but its product is not in the catalog: it is kept and grants nothing until the catalog lists it',
    };
  }
  return { status: 'REJECTED', reason: 'RECEIPT_IN_USE', message: 'this purchase belongs to another customer' };
}
