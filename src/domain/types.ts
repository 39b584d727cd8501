// Store-independent vocabulary shared by the engine, the store adapters and persistence.
// Pure types and constants only: nothing in src/domain may import I/O.

export const STORES = ['APP_STORE', 'PLAY_STORE'] as const;
export type Store = (typeof STORES)[number];

/** Where an entitlement may come from: a store purchase, or a promotional grant made by support. */
export const ENTITLEMENT_STORES = [...STORES, 'PROMOTIONAL'] as const;
export type EntitlementStore = (typeof ENTITLEMENT_STORES)[number];

export const ENVIRONMENTS = ['PRODUCTION', 'SANDBOX'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

export const PRODUCT_KINDS = ['AUTO_RENEWABLE', 'NON_RENEWING', 'NON_CONSUMABLE', 'CONSUMABLE'] as const;
export type ProductKind = (typeof PRODUCT_KINDS)[number];

export const SUBSCRIPTION_STATES = ['ACTIVE', 'CANCELED', 'GRACE', 'ON_HOLD', 'PAUSED', 'EXPIRED', 'REVOKED'] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

/** States in which a subscription entitles (while its relevant end is in the future). */
export const ENTITLING_STATES: ReadonlySet<SubscriptionState> = new Set(['ACTIVE', 'CANCELED', 'GRACE']);

export const OWNERSHIPS = ['PURCHASED', 'FAMILY_SHARED'] as const;
export type Ownership = (typeof OWNERSHIPS)[number];

/** Why a subscription stopped renewing, as far as the store says. Drives voluntary vs involuntary churn. */
export const EXPIRATION_REASONS = ['VOLUNTARY', 'BILLING_ERROR', 'PRICE_INCREASE', 'PRODUCT_UNAVAILABLE', 'OTHER'] as const;
export type ExpirationReason = (typeof EXPIRATION_REASONS)[number];

export const EVENT_TYPES = [
  'INITIAL_PURCHASE',
  'RENEWAL',
  'CANCELLATION',
  'UNCANCELLATION',
  'BILLING_ISSUE',
  'GRACE_PERIOD',
  'ON_HOLD',
  'BILLING_RECOVERY',
  'PAUSE',
  'RESUME',
  'PRODUCT_CHANGE',
  'EXPIRATION',
  'REACTIVATION',
  'REFUND',
  'REFUND_REVERSED',
  'REVOCATION',
  'NON_RENEWING_PURCHASE',
  'NON_CONSUMABLE_PURCHASE',
  'CONSUMABLE_CREDIT',
  'CREDIT_CLAWBACK',
  'CREDIT_SPEND',
  'TRANSFER',
  'PROMOTIONAL_GRANT',
  'PROMOTIONAL_REVOCATION',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** A store price in micro-units of the currency (1.99 USD = 1_990_000). */
export interface Price {
  amountMicros: number;
  currency: string;
}

/**
 * One verified statement by a store about one transaction, in one shape for both stores.
 * Store adapters produce these; the engine consumes the ordered history of them.
 * A subscription's history holds one snapshot per observation (a renewal, a status fetch, a notification).
 */
export interface NormalizedPurchase {
  store: Store;
  environment: Environment;
  /** The store's product id (SKU). */
  productId: string;
  /** Store transaction id: Apple `transactionId`; Google order id (renewals get `..0`, `..1`) or the purchase token for one-time products without one. */
  transactionId: string;
  /** Apple `originalTransactionId`; Google: the purchase token that started the linked-token chain. */
  lineageId: string;
  /** Google: this purchase token; its `linkedPurchaseToken` predecessor is `previousLineageToken`. Apple: null. */
  purchaseToken: string | null;
  previousLineageToken: string | null;
  /** Start of this transaction (for a renewal: the start of the paid period). */
  purchasedAt: Date;
  /** End of the current paid period for subscriptions; null for products that do not expire. */
  expiresAt: Date | null;
  /** Whether the store will try to renew at `expiresAt`; null where the store does not say. */
  autoRenew: boolean | null;
  /** The store failed to charge and is retrying (Apple billing retry, Google grace or hold). */
  billingRetry: boolean;
  /** Access is kept until this time while the store retries (Apple `gracePeriodExpiresDate`, Google grace). */
  gracePeriodExpiresAt: Date | null;
  /** Google account hold: retrying with access removed. */
  onHold: boolean;
  /** Google paused subscription; `autoResumeAt` is when it resumes. */
  paused: boolean;
  autoResumeAt: Date | null;
  /** Why it expired or will not renew, when the store says. */
  expirationReason: ExpirationReason | null;
  /** Refund or family-sharing revocation. */
  revokedAt: Date | null;
  revocationReason: string | null;
  ownership: Ownership;
  /** Units bought (consumables); 1 otherwise. */
  quantity: number;
  /** The order token that travelled through the store (Apple `appAccountToken`, Google `obfuscatedExternalAccountId`). */
  orderToken: string | null;
  /** Introductory or promotional offer, e.g. `FREE_TRIAL`, `INTRO`, `PROMOTIONAL`; null when none. */
  offerType: string | null;
  price: Price | null;
  /** When the store made this statement (Apple `signedDate`, Google API fetch time). Orders the history. */
  observedAt: Date;
  /** The store's own payload, kept verbatim for support and audits. */
  raw: unknown;
}

/**
 * The facts of a purchase statement about which the store says nothing special: no expiry, no billing trouble,
 * not revoked, bought by the user, one unit. Adapters and tests spread it, then set what the store did say.
 */
export const PLAIN_PURCHASE_FACTS = {
  purchaseToken: null,
  previousLineageToken: null,
  expiresAt: null,
  autoRenew: null,
  billingRetry: false,
  gracePeriodExpiresAt: null,
  onHold: false,
  paused: false,
  autoResumeAt: null,
  expirationReason: null,
  revokedAt: null,
  revocationReason: null,
  ownership: 'PURCHASED',
  quantity: 1,
  orderToken: null,
  offerType: null,
  price: null,
} as const satisfies Partial<NormalizedPurchase>;

/** What the catalog says of one store product. */
export interface CatalogProduct {
  store: Store;
  productId: string;
  kind: ProductKind;
  entitlements: readonly string[];
  /** NON_RENEWING only: how long one purchase grants. */
  durationDays: number | null;
  /** CONSUMABLE only: credits granted per unit, e.g. { coins: 100 }. */
  credits: Readonly<Record<string, number>>;
  displayName: string | null;
}

/** A customer's right to one entitlement over a span; `endsAt` null means until revoked. */
export interface GrantSpan {
  entitlement: string;
  productId: string;
  /** The transaction whose payment this span rests on. */
  transactionId: string;
  startsAt: Date;
  endsAt: Date | null;
  /** PAID span of a period, or GRACE span kept while the store retries billing. */
  reason: 'PAID' | 'GRACE';
}

/** An event the engine wants recorded. `key` is deterministic so replays append nothing new. */
export interface DerivedEvent {
  key: string;
  type: EventType;
  occurredAt: Date;
  productId: string;
  transactionId: string;
  data: Record<string, unknown>;
}

/** A balance change for a consumable currency. `key` is deterministic: one credit per transaction, ever. */
export interface CreditChange {
  key: string;
  currency: string;
  amount: number;
  transactionId: string;
  reason: 'PURCHASE' | 'REFUND_CLAWBACK';
  occurredAt: Date;
}
