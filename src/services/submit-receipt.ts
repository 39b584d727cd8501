// submitReceipt: verify a client's purchase proof with its store, record what the store confirms, and
// answer with the customer's entitlements. Nothing is granted on unverified input; a proof the store could
// not judge yet is kept and retried (PENDING), never dropped.
import type { Logger } from 'pino';
import { AppError, type ReceiptReason, type ReceiptStatus } from '../domain/errors.js';
import type { PurchaseProof, StoreAdapters } from '../stores/adapter.js';
import type { PendingProofs } from './pending-proofs.js';
import type { PurchaseRecorder } from './purchase-recorder.js';
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
    const verification = await adapter.verify(cmd.proof);
    if (verification.status === 'PENDING') {
      await this.pending.keep(cmd.appUserId, cmd.proof, cmd.orderId, verification.reason, verification.message, cmd.now, attempts ?? 1);
      this.log.info({ store: cmd.proof.store, reason: verification.reason, attempts }, 'purchase proof kept for a later verification');
      return { status: 'PENDING', reason: verification.reason, message: verification.message, transactionIds: [] };
    }
    if (verification.status === 'REJECTED') {
      await this.pending.resolve(cmd.proof, 'REJECTED', verification.reason);
      this.log.info({ store: cmd.proof.store, reason: verification.reason, appUserId: cmd.appUserId }, `purchase proof rejected: ${verification.message}`);
      return { status: 'REJECTED', reason: verification.reason, message: verification.message, transactionIds: [] };
    }
    const transactionIds = verification.purchases.map((p) => p.transactionId);
    const recorded = await this.recorder.record(cmd.appUserId, verification.purchases, cmd.now, verification.followUps ?? []);
    if (verification.recheckLater) {
      // Granted on what the store verified; kept so the retry job asks the store for the current state again.
      const { reason, message } = verification.recheckLater;
      await this.pending.keep(cmd.appUserId, cmd.proof, cmd.orderId, reason, message, cmd.now, attempts ?? 1);
    } else {
      await this.pending.resolve(cmd.proof, 'VERIFIED', 'OK');
    }
    this.tasks.runSoon(recorded.queuedTaskIds);
    if (recorded.newTransactionIds.length > 0) {
      return { status: 'VERIFIED', reason: 'OK', message: 'purchase verified and recorded', transactionIds };
    }
    if (recorded.knownTransactionIds.length > 0) {
      return { status: 'ALREADY_VERIFIED', reason: 'ALREADY_VERIFIED', message: 'this purchase was already recorded for this customer', transactionIds };
    }
    if (recorded.unknownProductTransactionIds.length > 0 && recorded.foreignTransactionIds.length === 0) {
      return {
        status: 'REJECTED',
        reason: 'PRODUCT_NOT_IN_CATALOG',
        message: 'the store confirmed the purchase, but its product is not in the catalog: it is kept and grants nothing until the catalog lists it',
        transactionIds,
      };
    }
    return { status: 'REJECTED', reason: 'RECEIPT_IN_USE', message: 'this purchase belongs to another customer', transactionIds };
  }
}
