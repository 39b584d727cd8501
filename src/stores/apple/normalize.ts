// Apple's transaction shapes (StoreKit 2 signed transactions and renewal info, legacy verifyReceipt entries)
// turned into the store-independent NormalizedPurchase. Pure functions: no I/O.
import type { JWSRenewalInfoDecodedPayload, JWSTransactionDecodedPayload } from '@apple/app-store-server-library';
import type { AppleEnvironment } from '../../config/config.js';
import { PLAIN_PURCHASE_FACTS, type ExpirationReason, type NormalizedPurchase } from '../../domain/types.js';

/** Apple `expirationIntent` / `expiration_intent`: 1 canceled, 2 billing error, 3 price increase, 4 product unavailable, 5 other. */
const EXPIRATION_REASONS: Record<number, ExpirationReason> = { 1: 'VOLUNTARY', 2: 'BILLING_ERROR', 3: 'PRICE_INCREASE', 4: 'PRODUCT_UNAVAILABLE', 5: 'OTHER' };
/** Apple `offerType`: 1 introductory, 2 promotional, 3 offer code, 4 win-back. */
const OFFER_TYPES: Record<number, string> = { 1: 'INTRO', 2: 'PROMOTIONAL', 3: 'OFFER_CODE', 4: 'WIN_BACK' };
/** Apple `revocationReason`: 0 other (e.g. a refund the customer asked for), 1 an issue in the app. */
const REVOCATION_REASONS: Record<number, string> = { 0: 'REFUNDED', 1: 'REFUNDED_APP_ISSUE' };

export const FAMILY_SHARING_REVOKED = 'FAMILY_SHARING_REVOKED';

const dateOrNull = (ms: number | string | undefined | null): Date | null => {
  if (ms === undefined || ms === null || ms === '') return null;
  const n = Number(ms);
  return Number.isFinite(n) ? new Date(n) : null;
};

export function expirationReasonOf(intent: number | string | undefined | null): ExpirationReason | null {
  if (intent === undefined || intent === null || intent === '') return null;
  return EXPIRATION_REASONS[Number(intent)] ?? 'OTHER';
}

export interface SignedTransactionContext {
  environment: AppleEnvironment;
  /** Renewal info of the subscription, given only with its latest transaction (it speaks of the next renewal). */
  renewalInfo?: JWSRenewalInfoDecodedPayload | null;
  /** App Store Server API subscription status (1 active ... 5 revoked), when known. */
  status?: number | null;
  /** Overrides Apple's revocation reason, e.g. for a family-sharing REVOKE notification. */
  revocationReason?: string;
  /** When nothing Apple signed says when (never in practice). */
  now: Date;
}

/** A StoreKit 2 / App Store Server API transaction (with the subscription's renewal info, if latest). */
export function fromSignedTransaction(tx: JWSTransactionDecodedPayload, ctx: SignedTransactionContext): NormalizedPurchase {
  const renewal = ctx.renewalInfo ?? null;
  const transactionId = String(tx.transactionId);
  // An upgrade ends the old transaction when the new one starts; Apple marks it revoked, but nothing was refunded.
  const revokedAt = tx.isUpgraded ? null : dateOrNull(tx.revocationDate);
  const signedAt = Math.max(tx.signedDate ?? 0, renewal?.signedDate ?? 0);
  return {
    ...PLAIN_PURCHASE_FACTS,
    store: 'APP_STORE',
    environment: ctx.environment,
    productId: String(tx.productId),
    transactionId,
    lineageId: tx.originalTransactionId ? String(tx.originalTransactionId) : transactionId,
    purchasedAt: new Date(tx.purchaseDate ?? signedAt),
    expiresAt: dateOrNull(tx.expiresDate),
    autoRenew: renewal && renewal.autoRenewStatus !== undefined ? Number(renewal.autoRenewStatus) === 1 : null,
    billingRetry: renewal?.isInBillingRetryPeriod === true,
    gracePeriodExpiresAt: renewal?.isInBillingRetryPeriod ? dateOrNull(renewal.gracePeriodExpiresDate) : null,
    expirationReason: renewal ? expirationReasonOf(renewal.expirationIntent) : null,
    revokedAt,
    revocationReason: revokedAt ? (ctx.revocationReason ?? REVOCATION_REASONS[Number(tx.revocationReason)] ?? 'REFUNDED') : null,
    ownership: tx.inAppOwnershipType === 'FAMILY_SHARED' ? 'FAMILY_SHARED' : 'PURCHASED',
    quantity: tx.quantity && tx.quantity > 0 ? tx.quantity : 1,
    orderToken: tx.appAccountToken ? tx.appAccountToken.toLowerCase() : null,
    offerType: offerTypeOf(tx.offerType, tx.offerDiscountType),
    price: typeof tx.price === 'number' && tx.currency ? { amountMicros: tx.price * 1000, currency: tx.currency } : null,
    observedAt: signedAt > 0 ? new Date(signedAt) : ctx.now,
    raw: { transaction: tx, renewalInfo: renewal, status: ctx.status ?? null },
  };
}

function offerTypeOf(offerType: number | undefined, discountType: string | undefined): string | null {
  if (offerType === undefined || offerType === null) return null;
  if (Number(offerType) === 1 && discountType === 'FREE_TRIAL') return 'FREE_TRIAL';
  return OFFER_TYPES[Number(offerType)] ?? `OFFER_${offerType}`;
}

// ---------------------------------------------------------------------------------------------------------
// Legacy verifyReceipt
// ---------------------------------------------------------------------------------------------------------

/** One entry of `in_app` / `latest_receipt_info` (Apple sends numbers as strings). */
export interface ReceiptEntry {
  transaction_id?: string;
  original_transaction_id?: string;
  product_id?: string;
  quantity?: string;
  purchase_date_ms?: string;
  expires_date_ms?: string;
  cancellation_date_ms?: string;
  cancellation_reason?: string;
  is_trial_period?: string;
  is_in_intro_offer_period?: string;
  is_upgraded?: string;
  in_app_ownership_type?: string;
  promotional_offer_id?: string;
  offer_code_ref_name?: string;
  app_account_token?: string;
  [field: string]: unknown;
}

export interface PendingRenewalInfo {
  original_transaction_id?: string;
  auto_renew_product_id?: string;
  product_id?: string;
  auto_renew_status?: string;
  expiration_intent?: string;
  is_in_billing_retry_period?: string;
  grace_period_expires_date_ms?: string;
  [field: string]: unknown;
}

/**
 * Every transaction a status-0 verifyReceipt answer holds, once each, keyed by transaction id: `in_app` and
 * `latest_receipt_info` overlap, and neither is in a promised order. The renewal info goes with the latest
 * transaction of its subscription.
 */
export function fromReceipt(
  entries: readonly ReceiptEntry[],
  renewals: readonly PendingRenewalInfo[],
  environment: AppleEnvironment,
  observedAt: Date,
): Map<string, NormalizedPurchase> {
  const byId = new Map<string, ReceiptEntry>();
  for (const e of entries) if (e.transaction_id) byId.set(String(e.transaction_id), { ...byId.get(String(e.transaction_id)), ...e });
  const latestOfLineage = new Map<string, ReceiptEntry>();
  for (const e of byId.values()) {
    if (!e.expires_date_ms) continue;
    const lineage = String(e.original_transaction_id ?? e.transaction_id);
    const current = latestOfLineage.get(lineage);
    if (!current || Number(e.purchase_date_ms) > Number(current.purchase_date_ms)) latestOfLineage.set(lineage, e);
  }
  const renewalOf = new Map(renewals.filter((r) => r.original_transaction_id).map((r) => [String(r.original_transaction_id), r]));
  const out = new Map<string, NormalizedPurchase>();
  for (const [id, e] of byId) {
    const lineageId = String(e.original_transaction_id ?? id);
    const renewal = latestOfLineage.get(lineageId) === e ? (renewalOf.get(lineageId) ?? null) : null;
    out.set(id, fromReceiptEntry(e, renewal, environment, observedAt));
  }
  return out;
}

function fromReceiptEntry(e: ReceiptEntry, renewal: PendingRenewalInfo | null, environment: AppleEnvironment, observedAt: Date): NormalizedPurchase {
  const transactionId = String(e.transaction_id);
  const upgraded = e.is_upgraded === 'true';
  const revokedAt = upgraded ? null : dateOrNull(e.cancellation_date_ms);
  const retrying = renewal?.is_in_billing_retry_period === '1';
  return {
    ...PLAIN_PURCHASE_FACTS,
    store: 'APP_STORE',
    environment,
    productId: String(e.product_id),
    transactionId,
    lineageId: String(e.original_transaction_id ?? transactionId),
    purchasedAt: new Date(Number(e.purchase_date_ms)),
    expiresAt: dateOrNull(e.expires_date_ms),
    autoRenew: renewal?.auto_renew_status !== undefined ? renewal.auto_renew_status === '1' : null,
    billingRetry: retrying,
    gracePeriodExpiresAt: retrying ? dateOrNull(renewal?.grace_period_expires_date_ms) : null,
    expirationReason: renewal ? expirationReasonOf(renewal.expiration_intent) : null,
    revokedAt,
    revocationReason: revokedAt ? (REVOCATION_REASONS[Number(e.cancellation_reason)] ?? 'REFUNDED') : null,
    ownership: e.in_app_ownership_type === 'FAMILY_SHARED' ? 'FAMILY_SHARED' : 'PURCHASED',
    quantity: Number(e.quantity) > 0 ? Number(e.quantity) : 1,
    orderToken: e.app_account_token ? e.app_account_token.toLowerCase() : null,
    offerType:
      e.is_trial_period === 'true' ? 'FREE_TRIAL' : e.is_in_intro_offer_period === 'true' ? 'INTRO' : e.promotional_offer_id ? 'PROMOTIONAL' : e.offer_code_ref_name ? 'OFFER_CODE' : null,
    observedAt,
    raw: { receiptEntry: e, pendingRenewalInfo: renewal },
  };
}
