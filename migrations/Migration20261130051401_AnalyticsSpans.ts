import { Migration } from '@mikro-orm/migrations';

/**
 * The analytics rollup (subscription_state_span), the views for BI tools, and statistics that let PostgreSQL
 * estimate per-month groups of events. Spans of subscriptions recorded before this migration are derived after
 * start-up by the backfill-analytics job, in batches (a migration holds start-up and should not depend on code
 * that may change later).
 */
export class Migration20261130051401_AnalyticsSpans extends Migration {

  override name = 'Migration20261130051401_AnalyticsSpans';

  override async up(): Promise<void> {
    const statements = [
      `create table "subscription_state_span" ("store" text not null, "lineage_id" varchar(512) not null, "seq" int not null, "environment" text not null, "product_id" varchar(200) not null, "state" text not null, "starts_at" timestamptz not null, "ends_at" timestamptz null, "previous_state" varchar(16) null, "previous_product_id" varchar(200) null, "cause" varchar(32) not null, "churn" varchar(16) null, "transaction_id" varchar(255) not null, "period_starts_at" timestamptz not null, "period_ends_at" timestamptz null, "price_micros" bigint null, "currency" varchar(3) null, "offer_type" varchar(32) null, "previous_offer_type" varchar(32) null, "monthly_micros" bigint null, "first_purchased_at" timestamptz not null, primary key ("store", "lineage_id", "seq"));`,
      `create index "subscription_state_span_starts_idx" on "subscription_state_span" ("starts_at");`,
      `alter table "subscription_state_span" add constraint "subscription_state_span_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`,
      `alter table "subscription_state_span" add constraint "subscription_state_span_environment_check" check ("environment" in ('PRODUCTION', 'SANDBOX'));`,
      `alter table "subscription_state_span" add constraint "subscription_state_span_state_check" check ("state" in ('ACTIVE', 'CANCELED', 'GRACE', 'ON_HOLD', 'PAUSED', 'EXPIRED', 'REVOKED'));`,
      // Per-month groups of events and spans are estimated from these, not guessed (PostgreSQL 14 and later).
      `create statistics "event_occurred_month_stats" on (date_trunc('month', "occurred_at" at time zone 'UTC')) from "event";`,
      `create statistics "subscription_state_span_month_stats" on (date_trunc('month', "starts_at" at time zone 'UTC')) from "subscription_state_span";`,
      `create view "analytics_subscription_spans" as
         select s.store, s.environment, s.lineage_id as original_transaction_id, c.app_user_id, s.product_id, s.state,
           s.state in ('ACTIVE', 'CANCELED', 'GRACE') as entitled, s.starts_at, s.ends_at, s.previous_state, s.cause, s.churn,
           s.transaction_id, s.period_starts_at, s.period_ends_at, s.price_micros, s.currency, s.offer_type,
           s.monthly_micros, s.first_purchased_at
         from subscription_state_span s
         left join subscription sub on sub.store = s.store and sub.lineage_id = s.lineage_id
         left join customer c on c.id = sub.customer_id;`,
      `create view "analytics_subscription_events" as
         select e.id as event_id, e.type, e.occurred_at, e.recorded_at, e.store, e.environment, e.product_id,
           e.lineage_id as original_transaction_id, e.store_transaction_id as transaction_id, c.app_user_id,
           (e.data->'price'->>'amountMicros')::bigint as price_micros, e.data->'price'->>'currency' as currency,
           e.data->>'offerType' as offer_type, e.data->>'churn' as churn, (e.data->>'expiresAt')::timestamptz as expires_at,
           sub.state as current_state
         from event e
         join subscription sub on sub.store = e.store and sub.lineage_id = e.lineage_id
         left join customer c on c.id = e.customer_id;`,
    ];
    for (const sql of statements) await this.execute(sql);
  }

  override async down(): Promise<void> {
    await this.execute(`drop view if exists "analytics_subscription_events";`);
    await this.execute(`drop view if exists "analytics_subscription_spans";`);
    await this.execute(`drop statistics if exists "event_occurred_month_stats";`);
    await this.execute(`drop table if exists "subscription_state_span" cascade;`);
  }

}
