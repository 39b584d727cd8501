// MikroORM entity definitions. The schema in migrations/ is generated from these.
// Times are timestamptz, store payloads jsonb. GraphQL types live apart (src/graphql) so the API can
// change without a migration.
import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import {
  ENVIRONMENTS,
  EVENT_TYPES,
  OWNERSHIPS,
  PRODUCT_KINDS,
  STORES,
  SUBSCRIPTION_STATES,
} from '../domain/types.js';
import type { EntitlementSource } from '../domain/engine.js';

const ts = () => p.datetime().columnType('timestamptz');
const createdAt = () => ts().onCreate(() => new Date());

export const Customer = defineEntity({
  name: 'Customer',
  tableName: 'customer',
  properties: {
    id: p.uuid().primary(),
    appUserId: p.string().length(255).unique('customer_app_user_id_unique'),
    /** Cache of what the customer's subscriptions and purchases entitle, rewritten with every change. */
    entitlementSources: p.json<EntitlementSource[]>().default('[]' as never),
    /** Bumped on every change of entitlementSources; lets caches tell fresh from stale. */
    revision: p.integer().default(0),
    createdAt: createdAt(),
    updatedAt: ts().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});
export type CustomerEntity = InferEntity<typeof Customer>;

export const Product = defineEntity({
  name: 'Product',
  tableName: 'product',
  properties: {
    store: p.enum(STORES).primary().length(16),
    productId: p.string().length(200).primary(),
    kind: p.enum(PRODUCT_KINDS).length(16),
    entitlements: p.json<string[]>(),
    durationDays: p.integer().nullable(),
    credits: p.json<Record<string, number>>(),
    displayName: p.string().length(200).nullable(),
    updatedAt: ts().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});

/** One store transaction, stored once ever: (store, storeTransactionId) is unique. */
export const Purchase = defineEntity({
  name: 'Purchase',
  tableName: 'purchase',
  uniques: [{ name: 'purchase_store_transaction_unique', properties: ['store', 'storeTransactionId'] }],
  indexes: [
    { name: 'purchase_customer_idx', properties: ['customer'] },
    { name: 'purchase_lineage_idx', properties: ['store', 'lineageId'] },
    // Google purchases are looked up by token (submissions, notifications, re-checks, voided purchases).
    { name: 'purchase_token_idx', properties: ['store', 'purchaseToken'], where: 'purchase_token is not null' },
  ],
  properties: {
    id: p.uuid().primary(),
    /** Null while nobody has claimed it (seen only through a store notification). */
    customer: () => p.manyToOne(Customer).nullable().deleteRule('restrict'),
    store: p.enum(STORES).length(16),
    environment: p.enum(ENVIRONMENTS).length(16),
    storeTransactionId: p.string().length(255),
    productId: p.string().length(200),
    /** Null when the catalog did not list the product when the purchase was recorded. */
    kind: p.enum(PRODUCT_KINDS).length(16).nullable(),
    lineageId: p.string().length(512),
    purchaseToken: p.text().nullable(),
    purchasedAt: ts(),
    expiresAt: ts().nullable(),
    revokedAt: ts().nullable(),
    revocationReason: p.string().length(64).nullable(),
    ownership: p.enum(OWNERSHIPS).length(16),
    quantity: p.integer().default(1),
    orderToken: p.string().length(255).nullable(),
    priceMicros: p.bigint('number').nullable(),
    currency: p.string().length(3).nullable(),
    offerType: p.string().length(32).nullable(),
    raw: p.json<unknown>(),
    createdAt: createdAt(),
    updatedAt: ts().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});

/** Every verified statement a store made about a transaction, append-only: the engine's input. */
export const PurchaseObservation = defineEntity({
  name: 'PurchaseObservation',
  tableName: 'purchase_observation',
  uniques: [{ name: 'purchase_observation_fingerprint_unique', properties: ['store', 'lineageId', 'fingerprint'] }],
  indexes: [{ name: 'purchase_observation_lineage_idx', properties: ['store', 'lineageId', 'observedAt'] }],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    store: p.enum(STORES).length(16),
    lineageId: p.string().length(512),
    storeTransactionId: p.string().length(255),
    /** Hash of the normalized snapshot: the same statement seen twice is stored once. */
    fingerprint: p.string().length(64),
    observedAt: ts(),
    /** The normalized purchase (dates as ISO strings) including the store's raw payload. */
    snapshot: p.json<Record<string, unknown>>(),
    createdAt: createdAt(),
  },
});

/** The chain of renewals of one purchase; its state columns cache the engine's latest derivation. */
export const Subscription = defineEntity({
  name: 'Subscription',
  tableName: 'subscription',
  uniques: [{ name: 'subscription_store_lineage_unique', properties: ['store', 'lineageId'] }],
  indexes: [
    { name: 'subscription_customer_idx', properties: ['customer'] },
    { name: 'subscription_state_expires_idx', properties: ['state', 'expiresAt'] },
    // Partial: only rows with a re-check scheduled, so the due query keeps its index plan at any table size.
    { name: 'subscription_next_check_idx', properties: ['store', 'nextCheckAt'], where: 'next_check_at is not null' },
  ],
  properties: {
    id: p.uuid().primary(),
    customer: () => p.manyToOne(Customer).nullable().deleteRule('restrict'),
    store: p.enum(STORES).length(16),
    environment: p.enum(ENVIRONMENTS).length(16),
    lineageId: p.string().length(512),
    productId: p.string().length(200),
    state: p.enum(SUBSCRIPTION_STATES).length(16),
    originalPurchasedAt: ts(),
    currentPeriodStartsAt: ts(),
    expiresAt: ts().nullable(),
    gracePeriodExpiresAt: ts().nullable(),
    autoResumeAt: ts().nullable(),
    willRenew: p.boolean(),
    ownership: p.enum(OWNERSHIPS).length(16),
    revokedAt: ts().nullable(),
    revocationReason: p.string().length(64).nullable(),
    expirationReason: p.string().length(32).nullable(),
    latestTransactionId: p.string().length(255),
    /** When the store is asked again for this subscription's state (null: nothing can change it any more). */
    nextCheckAt: ts().nullable(),
    /** Re-checks in a row the store could not answer (reset by an answer). */
    checkAttempts: p.integer().default(0),
    lastCheckedAt: ts().nullable(),
    /** The latest legacy App Store receipt listing it: how it is re-checked without an App Store Server API key. */
    appReceipt: p.text().nullable(),
    createdAt: createdAt(),
    updatedAt: ts().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});

/**
 * A customer's right to an entitlement over a span. Never edited: when a derivation no longer contains
 * a grant, the row is marked superseded and the new grant is inserted beside it.
 */
export const Grant = defineEntity({
  name: 'Grant',
  tableName: 'entitlement_grant',
  indexes: [
    { name: 'entitlement_grant_customer_current_idx', properties: ['customer', 'entitlement'], where: 'superseded_at is null' },
    { name: 'entitlement_grant_source_idx', properties: ['sourceKey'] },
  ],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    customer: () => p.manyToOne(Customer).deleteRule('restrict'),
    entitlement: p.string().length(64),
    store: p.enum(STORES).length(16),
    environment: p.enum(ENVIRONMENTS).length(16),
    productId: p.string().length(200),
    /** `sub:<store>:<lineage>` or `tx:<store>:<transaction>`: what the grant derives from. */
    sourceKey: p.string().length(600),
    storeTransactionId: p.string().length(255),
    reason: p.string().length(16),
    startsAt: ts(),
    endsAt: ts().nullable(),
    createdAt: createdAt(),
    supersededAt: ts().nullable(),
  },
});

/** Append-only balance changes of consumable currencies. `key` makes each change happen once. */
export const CreditLedgerEntry = defineEntity({
  name: 'CreditLedgerEntry',
  tableName: 'credit_ledger',
  uniques: [{ name: 'credit_ledger_key_unique', properties: ['key'] }],
  indexes: [{ name: 'credit_ledger_customer_idx', properties: ['customer', 'currency', 'createdAt'] }],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    customer: () => p.manyToOne(Customer).deleteRule('restrict'),
    currency: p.string().length(64),
    amount: p.bigint('number'),
    /** Balance after this entry: spending is checked against it under a row lock. */
    balanceAfter: p.bigint('number'),
    reason: p.string().length(32),
    key: p.string().length(600),
    storeTransactionId: p.string().length(255).nullable(),
    createdAt: createdAt(),
  },
});

/** Current balance per (customer, currency): the row locked while spending. The ledger is the truth. */
export const CreditBalance = defineEntity({
  name: 'CreditBalance',
  tableName: 'credit_balance',
  properties: {
    customer: () => p.manyToOne(Customer).primary().deleteRule('restrict'),
    currency: p.string().length(64).primary(),
    balance: p.bigint('number'),
    updatedAt: ts().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});

export const ORDER_STATUSES = ['CREATED', 'PAID', 'FULFILLED', 'EXPIRED', 'CANCELED'] as const;

/** An intent issued before a purchase; its token travels through the store to match the purchase. */
export const PurchaseOrder = defineEntity({
  name: 'PurchaseOrder',
  tableName: 'purchase_order',
  uniques: [{ name: 'purchase_order_token_unique', properties: ['token'] }],
  indexes: [{ name: 'purchase_order_customer_idx', properties: ['customer', 'productId', 'createdAt'] }],
  properties: {
    id: p.uuid().primary(),
    customer: () => p.manyToOne(Customer).deleteRule('restrict'),
    store: p.enum(STORES).length(16).nullable(),
    productId: p.string().length(200),
    token: p.string().length(64),
    status: p.enum(ORDER_STATUSES).length(16),
    purchase: () => p.manyToOne(Purchase).nullable().deleteRule('set null'),
    createdAt: createdAt(),
    expiresAt: ts(),
    updatedAt: ts().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});

/** Append-only history of every state change: the source for analytics and audits. */
export const Event = defineEntity({
  name: 'Event',
  tableName: 'event',
  uniques: [{ name: 'event_key_unique', properties: ['key'] }],
  indexes: [
    { name: 'event_customer_occurred_idx', properties: ['customer', 'occurredAt'] },
    { name: 'event_type_occurred_idx', properties: ['type', 'occurredAt'] },
    { name: 'event_lineage_idx', properties: ['store', 'lineageId'] },
  ],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    key: p.string().length(700),
    customer: () => p.manyToOne(Customer).nullable().deleteRule('restrict'),
    type: p.enum(EVENT_TYPES).length(32),
    occurredAt: ts(),
    recordedAt: createdAt(),
    store: p.enum(STORES).length(16).nullable(),
    environment: p.enum(ENVIRONMENTS).length(16).nullable(),
    productId: p.string().length(200).nullable(),
    lineageId: p.string().length(512).nullable(),
    storeTransactionId: p.string().length(255).nullable(),
    data: p.json<Record<string, unknown>>(),
  },
});

/**
 * Analytics rollup: the stretches of time each subscription spent in each state, one row per state and paid
 * period, derived from the subscription's events (src/domain/analytics.ts) and rewritten with them in the same
 * transaction, so it is always exactly what the events say. The analytics queries and the BI views read it.
 */
export const SubscriptionStateSpan = defineEntity({
  name: 'SubscriptionStateSpan',
  tableName: 'subscription_state_span',
  indexes: [{ name: 'subscription_state_span_starts_idx', properties: ['startsAt'] }],
  properties: {
    store: p.enum(STORES).length(16).primary(),
    lineageId: p.string().length(512).primary(),
    seq: p.integer().primary(),
    environment: p.enum(ENVIRONMENTS).length(16),
    productId: p.string().length(200),
    state: p.enum(SUBSCRIPTION_STATES).length(16),
    startsAt: ts(),
    /** Null: the subscription is still in this state as far as its events say. */
    endsAt: ts().nullable(),
    previousState: p.string().length(16).nullable(),
    previousProductId: p.string().length(200).nullable(),
    /** The event type that started the span, or TIME when a period or grace period ran out. */
    cause: p.string().length(32),
    /** VOLUNTARY, INVOLUNTARY, REVOKED or OTHER on the span that ended the subscription. */
    churn: p.string().length(16).nullable(),
    transactionId: p.string().length(255),
    periodStartsAt: ts(),
    periodEndsAt: ts().nullable(),
    priceMicros: p.bigint('number').nullable(),
    currency: p.string().length(3).nullable(),
    offerType: p.string().length(32).nullable(),
    previousOfferType: p.string().length(32).nullable(),
    /** The period's price as a monthly amount in micro-units; null when the price is not known. */
    monthlyMicros: p.bigint('number').nullable(),
    firstPurchasedAt: ts(),
  },
});

/** Where events are delivered (outbound webhooks). Synced from WEBHOOK_URLS at start-up; removed URLs stay inactive. */
export const WebhookEndpoint = defineEntity({
  name: 'WebhookEndpoint',
  tableName: 'webhook_endpoint',
  properties: {
    id: p.integer().primary().autoincrement(),
    url: p.text().unique('webhook_endpoint_url_unique'),
    active: p.boolean().default(true),
    createdAt: createdAt(),
  },
});

export const WEBHOOK_DELIVERY_STATUSES = ['PENDING', 'DELIVERED', 'FAILED'] as const;

/**
 * The outbox: one row per (endpoint, event), written in the same transaction as the event, so a crash never
 * loses a delivery. Delivered in event order per customer and endpoint, retried with backoff.
 */
export const WebhookDelivery = defineEntity({
  name: 'WebhookDelivery',
  tableName: 'webhook_delivery',
  uniques: [{ name: 'webhook_delivery_endpoint_event_unique', properties: ['endpoint', 'event'] }],
  indexes: [
    { name: 'webhook_delivery_due_idx', properties: ['status', 'nextAttemptAt'] },
    { name: 'webhook_delivery_customer_idx', properties: ['endpoint', 'customer', 'id'] },
  ],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    endpoint: () => p.manyToOne(WebhookEndpoint).deleteRule('cascade'),
    event: () => p.manyToOne(Event).deleteRule('cascade'),
    customer: () => p.manyToOne(Customer).nullable().deleteRule('cascade'),
    status: p.enum(WEBHOOK_DELIVERY_STATUSES).length(16),
    attempts: p.integer().default(0),
    nextAttemptAt: ts(),
    lastAttemptAt: ts().nullable(),
    /** HTTP status of the last attempt; null when there was no answer (refused, timed out). */
    responseStatus: p.integer().nullable(),
    lastError: p.text().nullable(),
    deliveredAt: ts().nullable(),
    createdAt: createdAt(),
  },
});

/** An entitlement granted by support (promotion, goodwill), with an optional expiry; revoked, never deleted. */
export const PromotionalEntitlement = defineEntity({
  name: 'PromotionalEntitlement',
  tableName: 'promotional_entitlement',
  indexes: [{ name: 'promotional_entitlement_customer_idx', properties: ['customer'] }],
  properties: {
    id: p.uuid().primary(),
    customer: () => p.manyToOne(Customer).deleteRule('cascade'),
    entitlement: p.string().length(64),
    startsAt: ts(),
    /** Null: until revoked. */
    expiresAt: ts().nullable(),
    reason: p.text(),
    revokedAt: ts().nullable(),
    revokeReason: p.text().nullable(),
    createdAt: createdAt(),
  },
});

export const PROOF_STATUSES = ['PENDING', 'VERIFIED', 'REJECTED'] as const;

/**
 * A purchase proof the store could not judge yet (store down, credentials refused, payment pending): kept
 * with its customer and retried until the store gives a definitive answer. Never dropped.
 */
export const PendingProof = defineEntity({
  name: 'PendingProof',
  tableName: 'pending_proof',
  uniques: [{ name: 'pending_proof_key_unique', properties: ['store', 'proofKey'] }],
  indexes: [
    { name: 'pending_proof_due_idx', properties: ['status', 'nextAttemptAt'] },
    { name: 'pending_proof_customer_idx', properties: ['appUserId', 'status', 'createdAt'] },
  ],
  properties: {
    id: p.uuid().primary(),
    store: p.enum(STORES).length(16),
    /** What identifies the proof: Google purchase token, Apple transaction id or receipt digest. */
    proofKey: p.string().length(600),
    appUserId: p.string().length(255),
    proof: p.json<Record<string, unknown>>(),
    orderId: p.string().length(64).nullable(),
    status: p.enum(PROOF_STATUSES).length(16),
    reason: p.string().length(64),
    attempts: p.integer().default(0),
    nextAttemptAt: ts(),
    lastError: p.text().nullable(),
    createdAt: createdAt(),
    updatedAt: ts().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});

export const STORE_TASK_KINDS = ['ACKNOWLEDGE_PRODUCT', 'ACKNOWLEDGE_SUBSCRIPTION', 'CONSUME_PRODUCT'] as const;
/** FAILED: the store refused for good (purchase gone or refunded); kept for support, not retried. */
export const STORE_TASK_STATUSES = ['PENDING', 'DONE', 'FAILED'] as const;

/** Calls the store must receive after a grant (acknowledge, consume), queued in the grant's transaction. */
export const StoreTask = defineEntity({
  name: 'StoreTask',
  tableName: 'store_task',
  uniques: [{ name: 'store_task_kind_token_unique', properties: ['kind', 'token'] }],
  indexes: [{ name: 'store_task_due_idx', properties: ['status', 'nextAttemptAt'] }],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    store: p.enum(STORES).length(16),
    kind: p.enum(STORE_TASK_KINDS).length(32),
    packageName: p.string().length(255),
    productId: p.string().length(200),
    token: p.text(),
    status: p.enum(STORE_TASK_STATUSES).length(16),
    attempts: p.integer().default(0),
    nextAttemptAt: ts(),
    lastError: p.text().nullable(),
    createdAt: createdAt(),
    doneAt: ts().nullable(),
  },
});

/** FAILED: its attempts were used up; kept with its last error for support, never retried. */
export const NOTIFICATION_STATUSES = ['RECEIVED', 'PROCESSED', 'IGNORED', 'FAILED'] as const;

/** Every store server notification as received, deduplicated by the store's message id. */
export const StoreNotification = defineEntity({
  name: 'StoreNotification',
  tableName: 'store_notification',
  uniques: [{ name: 'store_notification_message_unique', properties: ['store', 'messageId'] }],
  indexes: [{ name: 'store_notification_due_idx', properties: ['status', 'nextAttemptAt'] }],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    store: p.enum(STORES).length(16),
    messageId: p.string().length(255),
    /** The notification type as the store names it, e.g. SUBSCRIPTION_RENEWED. */
    type: p.string().length(64),
    payload: p.json<Record<string, unknown>>(),
    /** Whether the push carried a verified token of the configured push service account. */
    authenticated: p.boolean().default(false),
    status: p.enum(NOTIFICATION_STATUSES).length(16),
    attempts: p.integer().default(0),
    nextAttemptAt: ts(),
    lastError: p.text().nullable(),
    /** What processing did with it, for support (e.g. "applied to user-1", "ignored: test notification"). */
    outcome: p.text().nullable(),
    receivedAt: createdAt(),
    processedAt: ts().nullable(),
  },
});

/**
 * Refunds and chargebacks a store reported (Google voided purchases), kept even when the purchase is not
 * stored yet: Google's purchase resources never show a refund, so this is what keeps a voided purchase revoked.
 */
export const VoidedPurchase = defineEntity({
  name: 'VoidedPurchase',
  tableName: 'voided_purchase',
  uniques: [{ name: 'voided_purchase_token_order_unique', properties: ['store', 'purchaseToken', 'orderId'] }],
  properties: {
    id: p.bigint('number').primary().autoincrement(),
    store: p.enum(STORES).length(16),
    purchaseToken: p.text(),
    /** The voided order; '' when the store did not name one (then every order of the token is voided). */
    orderId: p.string().length(255),
    voidedAt: ts(),
    reason: p.string().length(32),
    recordedAt: createdAt(),
  },
});

/** Small named positions, e.g. how far the Voided Purchases API has been read for a package. */
export const StoreCursor = defineEntity({
  name: 'StoreCursor',
  tableName: 'store_cursor',
  properties: {
    key: p.string().length(255).primary(),
    value: p.text(),
    updatedAt: ts().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});

/** One row per scheduled job run slot: the instance that inserted it runs the slot (node-cron's run coordinator). */
export const JobRun = defineEntity({
  name: 'JobRun',
  tableName: 'job_run',
  indexes: [{ name: 'job_run_job_slot_idx', properties: ['job', 'slot'] }],
  properties: {
    key: p.string().length(255).primary(),
    job: p.string().length(64),
    slot: ts(),
    instance: p.string().length(128),
    startedAt: ts(),
    finishedAt: ts().nullable(),
    /** What the run did (JSON), or its error. */
    outcome: p.text().nullable(),
  },
});

/**
 * Per-store request budget shared by every instance (a token bucket), and the store's back-off after
 * repeated failures.
 */
export const StoreBudget = defineEntity({
  name: 'StoreBudget',
  tableName: 'store_budget',
  properties: {
    store: p.enum(STORES).length(16).primary(),
    tokens: p.double(),
    refilledAt: ts(),
    consecutiveFailures: p.integer().default(0),
    pausedUntil: ts().nullable(),
  },
});

export const ENTITIES = [
  JobRun,
  StoreBudget,
  Customer,
  Product,
  Purchase,
  PurchaseObservation,
  Subscription,
  Grant,
  CreditLedgerEntry,
  CreditBalance,
  PurchaseOrder,
  Event,
  SubscriptionStateSpan,
  PendingProof,
  StoreTask,
  StoreNotification,
  StoreCursor,
  VoidedPurchase,
  WebhookEndpoint,
  WebhookDelivery,
  PromotionalEntitlement,
];
