// Google Play API resources -> the normalized purchase shape. Pure: no network, no clock.
import type { androidpublisher_v3 } from 'googleapis';
import type { ReceiptReason } from '../../domain/errors.js';
import { PLAIN_PURCHASE_FACTS, type ExpirationReason, type NormalizedPurchase, type Price, type ProductKind } from '../../domain/types.js';

type ProductPurchase = androidpublisher_v3.Schema$ProductPurchase;
type SubscriptionPurchaseV2 = androidpublisher_v3.Schema$SubscriptionPurchaseV2;

import type { StoreTaskSpec } from '../adapter.js';

export type { StoreTaskSpec };

export type GoogleReading =
  | { status: 'VERIFIED'; purchase: NormalizedPurchase; followUps: StoreTaskSpec[] }
  | { status: 'PENDING' | 'REJECTED'; reason: ReceiptReason; message: string };

export interface ReadingContext {
  packageName: string;
  token: string;
  /** When the API was read: orders the history. */
  observedAt: Date;
  /** Set when Google reported the purchase voided (refund, chargeback). */
  revokedAt?: Date | null;
  revocationReason?: string | null;
}

const ms = (v: string | null | undefined): Date | null => (v ? new Date(Number(v)) : null);
const time = (v: string | null | undefined): Date | null => (v ? new Date(v) : null);

export function fromProductPurchase(p: ProductPurchase, productId: string, kind: ProductKind, ctx: ReadingContext): GoogleReading {
  if (p.purchaseState === 2) {
    return { status: 'PENDING', reason: 'PURCHASE_PENDING', message: 'the payment is pending at Google (e.g. cash); it is granted when it completes' };
  }
  if (p.purchaseState === 1) return { status: 'REJECTED', reason: 'PURCHASE_CANCELED', message: 'Google reports this purchase as canceled' };
  if (p.purchaseState !== 0 && p.purchaseState !== undefined && p.purchaseState !== null) {
    return { status: 'REJECTED', reason: 'INVALID_PURCHASE_TOKEN', message: `unknown purchaseState ${p.purchaseState}` };
  }
  const purchasedAt = ms(p.purchaseTimeMillis) ?? ctx.observedAt;
  const purchase: NormalizedPurchase = {
    ...PLAIN_PURCHASE_FACTS,
    store: 'PLAY_STORE',
    environment: p.purchaseType === 0 ? 'SANDBOX' : 'PRODUCTION',
    productId,
    transactionId: p.orderId || ctx.token,
    lineageId: ctx.token,
    purchaseToken: ctx.token,
    purchasedAt,
    revokedAt: ctx.revokedAt ?? null,
    revocationReason: ctx.revokedAt ? (ctx.revocationReason ?? 'VOIDED') : null,
    quantity: p.quantity && p.quantity > 0 ? p.quantity : 1,
    orderToken: p.obfuscatedExternalAccountId ?? null,
    observedAt: ctx.observedAt,
    raw: p,
  };
  const followUps: StoreTaskSpec[] = [];
  const task = { packageName: ctx.packageName, productId, token: ctx.token };
  // Consuming also acknowledges; a non-consumable is acknowledged so Google does not refund it after 3 days.
  if (kind === 'CONSUMABLE' && p.consumptionState !== 1) followUps.push({ kind: 'CONSUME_PRODUCT', ...task });
  else if (kind !== 'CONSUMABLE' && p.acknowledgementState !== 1) followUps.push({ kind: 'ACKNOWLEDGE_PRODUCT', ...task });
  return { status: 'VERIFIED', purchase, followUps };
}

export function fromSubscriptionPurchase(s: SubscriptionPurchaseV2, productId: string, ctx: ReadingContext): GoogleReading {
  const state = s.subscriptionState ?? 'SUBSCRIPTION_STATE_UNSPECIFIED';
  if (state === 'SUBSCRIPTION_STATE_PENDING') {
    return { status: 'PENDING', reason: 'PURCHASE_PENDING', message: 'the first payment is pending at Google; it is granted when it completes' };
  }
  if (state === 'SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED') {
    return { status: 'REJECTED', reason: 'PURCHASE_CANCELED', message: 'the pending purchase was canceled before it was paid' };
  }
  if (!KNOWN_STATES.has(state)) {
    // Never grant on a state we cannot read: keep the proof and look again later.
    return { status: 'PENDING', reason: 'STORE_UNAVAILABLE', message: `Google reported subscriptionState ${state}, which this version does not know` };
  }
  const item = s.lineItems?.find((i) => i.productId === productId) ?? s.lineItems?.[0];
  if (!item) return { status: 'REJECTED', reason: 'INVALID_PURCHASE_TOKEN', message: 'Google returned a subscription without line items' };
  const expired = state === 'SUBSCRIPTION_STATE_EXPIRED';
  const lineItemExpiry = time(item.expiryTime);
  // EXPIRED does not entitle, whatever the line item's expiry says (e.g. a subscription revoked early).
  const expiresAt = expired && (!lineItemExpiry || lineItemExpiry > ctx.observedAt) ? ctx.observedAt : lineItemExpiry;
  const startedAt = time(s.startTime) ?? ctx.observedAt;
  const inGrace = state === 'SUBSCRIPTION_STATE_IN_GRACE_PERIOD';
  const onHold = state === 'SUBSCRIPTION_STATE_ON_HOLD';
  const paused = state === 'SUBSCRIPTION_STATE_PAUSED';
  const autoRenewEnabled = item.autoRenewingPlan?.autoRenewEnabled ?? false;
  const autoRenew = state === 'SUBSCRIPTION_STATE_CANCELED' || state === 'SUBSCRIPTION_STATE_EXPIRED' ? false : autoRenewEnabled;
  // Renewals keep the token and get a new order id (GPA.…..0, ..1, …): the order id is the transaction.
  const orderId = item.latestSuccessfulOrderId ?? (s as { latestOrderId?: string | null }).latestOrderId ?? null;
  const purchase: NormalizedPurchase = {
    store: 'PLAY_STORE',
    environment: s.testPurchase ? 'SANDBOX' : 'PRODUCTION',
    productId: item.productId ?? productId,
    transactionId: orderId ?? `${ctx.token}:${item.expiryTime ?? ''}`,
    lineageId: ctx.token,
    purchaseToken: ctx.token,
    previousLineageToken: s.linkedPurchaseToken ?? null,
    // Google states no period start; the subscription's start is a lower bound that the recorder narrows
    // to the previous period's end when it knows it.
    purchasedAt: startedAt,
    expiresAt,
    autoRenew,
    billingRetry: inGrace || onHold,
    // While in grace, Google's line item expiry is the end of the grace period.
    gracePeriodExpiresAt: inGrace ? expiresAt : null,
    onHold,
    paused,
    autoResumeAt: paused ? time(s.pausedStateContext?.autoResumeTime) : null,
    expirationReason: expirationReasonOf(s),
    revokedAt: ctx.revokedAt ?? null,
    revocationReason: ctx.revokedAt ? (ctx.revocationReason ?? 'VOIDED') : null,
    ownership: 'PURCHASED',
    quantity: 1,
    orderToken: s.externalAccountIdentifiers?.obfuscatedExternalAccountId ?? null,
    offerType: offerTypeOf(item),
    price: priceOf(item.autoRenewingPlan?.recurringPrice),
    observedAt: ctx.observedAt,
    raw: s,
  };
  const followUps: StoreTaskSpec[] =
    s.acknowledgementState === 'ACKNOWLEDGEMENT_STATE_PENDING'
      ? [{ kind: 'ACKNOWLEDGE_SUBSCRIPTION', packageName: ctx.packageName, productId: purchase.productId, token: ctx.token }]
      : [];
  return { status: 'VERIFIED', purchase, followUps };
}

const KNOWN_STATES = new Set([
  'SUBSCRIPTION_STATE_ACTIVE',
  'SUBSCRIPTION_STATE_CANCELED',
  'SUBSCRIPTION_STATE_IN_GRACE_PERIOD',
  'SUBSCRIPTION_STATE_ON_HOLD',
  'SUBSCRIPTION_STATE_PAUSED',
  'SUBSCRIPTION_STATE_EXPIRED',
]);

function expirationReasonOf(s: SubscriptionPurchaseV2): ExpirationReason | null {
  const c = s.canceledStateContext;
  if (!c) return null;
  if (c.userInitiatedCancellation) return 'VOLUNTARY';
  if (c.systemInitiatedCancellation) return 'BILLING_ERROR';
  return 'OTHER';
}

function offerTypeOf(item: androidpublisher_v3.Schema$SubscriptionPurchaseLineItem): string | null {
  const phase = item.offerPhase;
  if (phase?.freeTrial) return 'FREE_TRIAL';
  if (phase?.introductoryPrice) return 'INTRO';
  if (phase?.prorationPeriod) return 'PRORATION';
  return item.offerDetails?.offerId ? 'PROMOTIONAL' : null;
}

function priceOf(money: androidpublisher_v3.Schema$Money | undefined): Price | null {
  if (!money?.currencyCode || (money.units == null && money.nanos == null)) return null;
  return { currency: money.currencyCode, amountMicros: Number(money.units ?? 0) * 1_000_000 + Math.round((money.nanos ?? 0) / 1000) };
}
