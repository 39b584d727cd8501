// submitReceipt: verify a client's purchase proof with its store, record what the store confirms, and
// answer with the customer's entitlements. Nothing is granted on unverified input; a proof the store could
// not judge yet is kept and retried (PENDING), never dropped.
import type { Logger } from 'pino';
import { AppError, type ReceiptReason, type ReceiptStatus } from '../domain/errors.js';
import type { PurchaseProof, StoreAdapters } from '../stores/adapter.js';
import type { PendingProofs } from './pending-proofs.js';
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
    if (!this.adapters[cmd.proof.store]) {
      throw new AppError('STORE_NOT_CONFIGURED', `${cmd.proof.store} is not configured on this server`, { store: cmd.proof.store });
    }
    return this.verifyAndRecord(cmd);
  }

  /**
   * Restore purchases: re-verifies everything the proofs cover and attaches what the store confirms to this
   * customer (a purchase another customer holds moves only under the transfer policy; consumables never move).
   * Each proof is verified and recorded on its own, so one store being down does not hold the others back.
   */
  async restore(appUserId: string, proofs: readonly PurchaseProof[], now: Date): Promise<RestoreResult> {
    const result: RestoreResult = { restoredTransactionIds: [], transferredTransactionIds: [], inUseTransactionIds: [], pending: [], rejected: [] };
    for (const proof of proofs) {
      const adapter = this.adapters[proof.store];
      if (!adapter) throw new AppError('STORE_NOT_CONFIGURED', `${proof.store} is not configured on this server`, { store: proof.store });
      await this.pending.markVerifying(appUserId, proof, null, now);
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

  /** Retries kept proofs that are due. Returns how many got a definitive answer. */
  async retryPending(now: Date, limit = 50): Promise<{ verified: number; rejected: number; stillPending: number }> {
    const counts = { verified: 0, rejected: 0, stillPending: 0 };
    for (const row of await this.pending.claimDue(now, limit)) {
      if (!this.adapters[row.proof.store]) {
        await this.pending.scheduleRetry(row.id, row.attempts, 'STORE_UNAVAILABLE', `${row.proof.store} is not configured`, now);
        counts.stillPending++;
        continue;
      }
      try {
        const result = await this.verifyAndRecord({ appUserId: row.appUserId, proof: row.proof, orderId: row.orderId, now }, row.attempts);
        if (result.status === 'PENDING') counts.stillPending++;
        else if (result.status === 'REJECTED') counts.rejected++;
        else counts.verified++;
      } catch (err) {
        this.log.error({ err, pendingProof: row.id }, 'retrying a kept proof failed; it stays kept');
        await this.pending.scheduleRetry(row.id, row.attempts, row.reason, (err as Error).message, now);
        counts.stillPending++;
      }
    }
    return counts;
  }

  private async verifyAndRecord(cmd: SubmitReceiptCommand, attempts?: number): Promise<SubmitReceiptResult> {
    const adapter = this.adapters[cmd.proof.store]!;
    // A fresh submission is kept before the store is asked: if this process dies mid-call, the retry job still
    // has it. (A retry already holds its row under a lease.)
    if (attempts === undefined) await this.pending.markVerifying(cmd.appUserId, cmd.proof, cmd.orderId, cmd.now);
    const verification = await adapter.verify(cmd.proof);
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
    } else if (verification.recheckLater) {
      // Granted on what the store verified; kept so the retry job asks the store for the current state again.
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
