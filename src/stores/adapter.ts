// The one interface every store adapter implements: turn a client's purchase proof into verified,
// normalized purchases, or say why not. Adapters never write to the database.
import type { ReceiptReason } from '../domain/errors.js';
import type { NormalizedPurchase, Store } from '../domain/types.js';

export interface AppleProof {
  store: 'APP_STORE';
  /** StoreKit 2 `jwsRepresentation` of a transaction. */
  signedTransaction: string | null;
  /** Legacy base64 app receipt. */
  appReceipt: string | null;
  /** With a legacy receipt: the transaction the app just bought. */
  transactionId: string | null;
}

export interface GoogleProof {
  store: 'PLAY_STORE';
  packageName: string | null;
  productId: string;
  purchaseToken: string;
  /** `Purchase.getOriginalJson()` exactly as the app received it, and its signature. */
  originalJson: string | null;
  signature: string | null;
}

export type PurchaseProof = AppleProof | GoogleProof;

/** A call the store must receive after the grant is committed (Google: acknowledge or consume). */
export interface StoreTaskSpec {
  kind: 'ACKNOWLEDGE_PRODUCT' | 'ACKNOWLEDGE_SUBSCRIPTION' | 'CONSUME_PRODUCT';
  packageName: string;
  productId: string;
  token: string;
}

/** A store call the store refused for good: the task is closed as FAILED instead of retried. */
export class PermanentStoreTaskError extends Error {
  override name = 'PermanentStoreTaskError';
}

export type VerificationResult =
  | {
      status: 'VERIFIED';
      purchases: NormalizedPurchase[];
      followUps?: StoreTaskSpec[];
      /** Verified, but the store could not tell the current state: keep the proof and verify it again later. */
      recheckLater?: { reason: ReceiptReason; message: string };
    }
  /** Not the proof's fault (store down, credentials refused): keep the proof and retry later. */
  | { status: 'PENDING'; reason: ReceiptReason; message: string }
  /** The store gave a definitive no. */
  | { status: 'REJECTED'; reason: ReceiptReason; message: string };

/** What is stored about a subscription to ask its store for its current state (scheduled re-checks). */
export interface SubscriptionRef {
  environment: 'PRODUCTION' | 'SANDBOX';
  lineageId: string;
  productId: string;
  /** Google: the latest purchase token of the subscription, and its app when known. */
  purchaseToken: string | null;
  packageName: string | null;
  /** Apple without an App Store Server API key: the latest legacy receipt that listed it. */
  appReceipt: string | null;
}

export interface StoreAdapter {
  readonly store: Store;
  verify(proof: PurchaseProof): Promise<VerificationResult>;
  /** The subscription's current state from the store, for scheduled re-checks. */
  recheck?(ref: SubscriptionRef): Promise<VerificationResult>;
  /** Whether `recheck` needs the stored legacy receipt (`ref.appReceipt`). */
  readonly recheckNeedsReceipt?: boolean;
  /** Everything the proof gives access to (restore): for Apple the account's whole transaction history. */
  restore?(proof: PurchaseProof): Promise<VerificationResult>;
  /**
   * Why the proof cannot be valid, judged from its shape alone (no I/O), or null: such a proof is refused before
   * it is kept for verification or sent to the store.
   */
  shapeProblem?(proof: PurchaseProof): { reason: ReceiptReason; message: string } | null;
}

export type StoreAdapters = Partial<Record<Store, StoreAdapter>>;
