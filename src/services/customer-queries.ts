// Read-side queries for the customer view beyond the hot entitlement check: subscriptions, one-time
// purchases, credit balances, events. Lean SQL, no entity hydration.
import type { Environment, Ownership, ProductKind, Store, SubscriptionState } from '../domain/types.js';
import type { Orm } from '../persistence/orm.js';
import { toDate } from '../persistence/snapshot-codec.js';

type Row = Record<string, unknown>;

export interface SubscriptionView {
  id: string;
  store: Store;
  environment: Environment;
  productId: string;
  state: SubscriptionState;
  originalPurchasedAt: Date;
  currentPeriodStartsAt: Date;
  expiresAt: Date | null;
  gracePeriodExpiresAt: Date | null;
  autoResumeAt: Date | null;
  willRenew: boolean;
  revokedAt: Date | null;
  ownership: Ownership;
  expirationReason: string | null;
  latestTransactionId: string;
  originalTransactionId: string;
}

export interface PurchaseView {
  id: string;
  store: Store;
  environment: Environment;
  productId: string;
  kind: ProductKind;
  storeTransactionId: string;
  purchasedAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  ownership: Ownership;
  quantity: number;
}

export interface BalanceView {
  currency: string;
  balance: number;
}

export class CustomerQueries {
  constructor(private readonly orm: Orm) {}

  private query(sql: string, params: unknown[]): Promise<Row[]> {
    return this.orm.em.getConnection().execute(sql, params, 'all') as Promise<Row[]>;
  }

  async subscriptions(customerId: string): Promise<SubscriptionView[]> {
    const rows = await this.query(
      `select id, store, environment, product_id, state, original_purchased_at, current_period_starts_at, expires_at,
         grace_period_expires_at, auto_resume_at, will_renew, revoked_at, expiration_reason, latest_transaction_id, lineage_id, ownership
       from subscription where customer_id = ? order by original_purchased_at desc, id`,
      [customerId],
    );
    return rows.map((r) => ({
      id: r.id as string,
      store: r.store as Store,
      environment: r.environment as Environment,
      productId: r.product_id as string,
      state: r.state as SubscriptionState,
      originalPurchasedAt: toDate(r.original_purchased_at)!,
      currentPeriodStartsAt: toDate(r.current_period_starts_at)!,
      expiresAt: toDate(r.expires_at),
      gracePeriodExpiresAt: toDate(r.grace_period_expires_at),
      autoResumeAt: toDate(r.auto_resume_at),
      willRenew: Boolean(r.will_renew),
      revokedAt: toDate(r.revoked_at),
      ownership: r.ownership as Ownership,
      expirationReason: (r.expiration_reason as string | null) ?? null,
      latestTransactionId: r.latest_transaction_id as string,
      originalTransactionId: r.lineage_id as string,
    }));
  }

  async oneTimePurchases(customerId: string): Promise<PurchaseView[]> {
    const rows = await this.query(
      `select id, store, environment, product_id, kind, store_transaction_id, purchased_at, expires_at, revoked_at, quantity, ownership
       from purchase where customer_id = ? and kind <> 'AUTO_RENEWABLE' order by purchased_at desc, id`,
      [customerId],
    );
    return rows.map((r) => ({
      id: r.id as string,
      store: r.store as Store,
      environment: r.environment as Environment,
      productId: r.product_id as string,
      kind: r.kind as ProductKind,
      storeTransactionId: r.store_transaction_id as string,
      purchasedAt: toDate(r.purchased_at)!,
      expiresAt: toDate(r.expires_at),
      revokedAt: toDate(r.revoked_at),
      ownership: r.ownership as Ownership,
      quantity: Number(r.quantity),
    }));
  }

  async balances(customerId: string): Promise<BalanceView[]> {
    const rows = await this.query('select currency, balance from credit_balance where customer_id = ? order by currency', [customerId]);
    return rows.map((r) => ({ currency: r.currency as string, balance: Number(r.balance) }));
  }

  async firstSeenAt(customerId: string): Promise<Date | null> {
    const [row] = await this.query('select created_at from customer where id = ?', [customerId]);
    return toDate(row?.created_at);
  }
}
