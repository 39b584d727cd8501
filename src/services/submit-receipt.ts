// submitReceipt: verify a client's purchase proof with its store, record what the store confirms, and
// answer with the customer's entitlements. Nothing is granted on unverified input.
import { AppError, type ReceiptReason, type ReceiptStatus } from '../domain/errors.js';
import type { StoreAdapters, PurchaseProof } from '../stores/adapter.js';
import type { PurchaseRecorder } from './purchase-recorder.js';

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
  ) {}

  async submit(cmd: SubmitReceiptCommand): Promise<SubmitReceiptResult> {
    const adapter = this.adapters[cmd.proof.store];
    if (!adapter) {
      throw new AppError('STORE_NOT_CONFIGURED', `${cmd.proof.store} is not configured on this server`, { store: cmd.proof.store });
    }
    const verification = await adapter.verify(cmd.proof);
    if (verification.status !== 'VERIFIED') {
      return { status: verification.status, reason: verification.reason, message: verification.message, transactionIds: [] };
    }
    const transactionIds = verification.purchases.map((p) => p.transactionId);
    const recorded = await this.recorder.record(cmd.appUserId, verification.purchases, cmd.now);
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
    return {
      status: 'REJECTED',
      reason: 'RECEIPT_IN_USE',
      message: 'this purchase belongs to another customer',
      transactionIds,
    };
  }
}
