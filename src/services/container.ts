// Wires the services one instance of the service runs with.
import type { Logger } from 'pino';
import type { AppConfig } from '../config/config.js';
import type { Catalog } from '../domain/catalog.js';
import type { Orm } from '../persistence/orm.js';
import type { StoreAdapters } from '../stores/adapter.js';
import type { Store } from '../domain/types.js';
import { AppStoreAdapter } from '../stores/apple/adapter.js';
import { GooglePlayAdapter } from '../stores/google/adapter.js';
import { AnalyticsService } from './analytics.js';
import { AppleNotifications } from './apple-notifications.js';
import { OrderService } from './orders.js';
import { SupportService } from './support.js';
import { CreditService } from './credits.js';
import { CustomerQueries } from './customer-queries.js';
import { EntitlementReader, ormCustomerLookup, type CustomerLookup } from './entitlement-reader.js';
import { GoogleNotifications } from './google-notifications.js';
import { PendingProofs } from './pending-proofs.js';
import { PurchaseRecorder } from './purchase-recorder.js';
import { StoreTaskRunner } from './store-tasks.js';
import { SubmitReceiptService } from './submit-receipt.js';
import { WebhookService, type WebhookMetrics } from './webhooks.js';
import { SubscriptionRevalidator, type RevalidationMetrics } from './revalidation.js';
import { StoreBudgets } from './store-budget.js';
import { SchedulerStatus } from './scheduler-status.js';

export type Clock = () => Date;

export interface Services {
  orm: Orm;
  catalog: Catalog;
  clock: Clock;
  reader: EntitlementReader;
  queries: CustomerQueries;
  recorder: PurchaseRecorder;
  credits: CreditService;
  receipts: SubmitReceiptService;
  pendingProofs: PendingProofs;
  storeTasks: StoreTaskRunner;
  /** Null unless Google Play is configured. */
  googleNotifications: GoogleNotifications | null;
  /** Null unless the App Store is configured. */
  appleNotifications: AppleNotifications | null;
  orders: OrderService;
  support: SupportService;
  /** Outbound webhooks: delivery job and log (delivers only when WEBHOOK_URLS is configured). */
  webhooks: WebhookService;
  /** Scheduled re-checks of stored subscriptions with their stores. */
  revalidator: SubscriptionRevalidator;
  budgets: StoreBudgets;
  schedulerStatus: SchedulerStatus;
  /** How long verified proofs are kept (the prune job). */
  verifiedProofRetentionMs: number;
  /** Subscription analytics over the event history (server API key only). */
  analytics: AnalyticsService;
}

export interface ServiceOptions {
  orm: Orm;
  catalog: Catalog;
  config: Pick<AppConfig, 'google' | 'apple' | 'entitlementCacheTtlMs' | 'entitlementCacheMaxBytes' | 'purchases' | 'webhooks' | 'jobs' | 'recheck' | 'revalidation'>;
  clock: Clock;
  log: Logger;
  customerLookup?: CustomerLookup;
  webhookMetrics?: WebhookMetrics;
  recheckMetrics?: RevalidationMetrics;
}

export function createServices(o: ServiceOptions): Services {
  const { orm, catalog, clock, log } = o;
  const reader = new EntitlementReader(o.customerLookup ?? ormCustomerLookup(orm), o.config.entitlementCacheTtlMs, o.config.entitlementCacheMaxBytes);
  const webhooks = new WebhookService(orm, o.config.webhooks, clock, log.child({ component: 'webhooks' }), o.webhookMetrics, o.config.jobs);
  // Called after every commit that changed a customer (and may have appended events): the cache entry goes,
  // and the webhooks those events queued are sent now rather than at the next scheduler slot.
  const afterCustomerWrite = (appUserId: string): void => {
    reader.invalidate(appUserId);
    webhooks.runSoon();
  };
  const recorder = new PurchaseRecorder(orm, catalog, afterCustomerWrite, o.config.purchases, o.config.recheck);
  const google = o.config.google ? new GooglePlayAdapter(o.config.google, catalog, log.child({ store: 'PLAY_STORE' }), clock) : null;
  const apple = o.config.apple ? new AppStoreAdapter(o.config.apple, catalog, log.child({ store: 'APP_STORE' }), clock) : null;
  const adapters: StoreAdapters = {};
  if (google) adapters.PLAY_STORE = google;
  if (apple) adapters.APP_STORE = apple;
  const pendingProofs = new PendingProofs(orm, o.config.jobs);
  const storeTasks = new StoreTaskRunner(orm, google, clock, log, o.config.jobs);
  const revalidation = o.config.revalidation;
  const budgets = new StoreBudgets(orm, revalidation.requestsPerMinute);
  const revalidator = new SubscriptionRevalidator(
    orm,
    adapters,
    recorder,
    storeTasks,
    budgets,
    o.config.jobs,
    o.config.recheck,
    revalidation,
    log.child({ component: 'revalidation' }),
    o.recheckMetrics,
  );
  return {
    orm,
    catalog,
    clock,
    reader,
    queries: new CustomerQueries(orm),
    recorder,
    credits: new CreditService(orm, () => webhooks.runSoon()),
    receipts: new SubmitReceiptService(adapters, recorder, pendingProofs, storeTasks, log),
    pendingProofs,
    storeTasks,
    googleNotifications:
      google && o.config.google
        ? new GoogleNotifications(orm, google, recorder, pendingProofs, storeTasks, clock, log, o.config.jobs, {
            pushAuthenticationConfigured: o.config.google.pubsub !== null,
          })
        : null,
    appleNotifications: apple ? new AppleNotifications(orm, apple, recorder, clock, log.child({ store: 'APP_STORE' }), o.config.jobs) : null,
    orders: new OrderService(orm, catalog, o.config.purchases),
    support: new SupportService(orm, catalog, apple, afterCustomerWrite, log),
    webhooks,
    revalidator,
    budgets,
    verifiedProofRetentionMs: o.config.purchases.verifiedProofRetentionMs,
    schedulerStatus: new SchedulerStatus(orm, revalidator, budgets, Object.keys(adapters) as Store[], revalidation.requestsPerMinute),
    analytics: new AnalyticsService(orm, catalog),
  };
}
