import { Migration } from '@mikro-orm/migrations';

export class Migration20261122051612_Initial extends Migration {

  override name = 'Migration20261122051612_Initial';

  override up(): void | Promise<void> {
    this.addSql(`create table "customer" ("id" uuid not null, "app_user_id" varchar(255) not null, "entitlement_sources" jsonb not null default '[]', "revision" int not null default 0, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`alter table "customer" add constraint "customer_app_user_id_unique" unique ("app_user_id");`);

    this.addSql(`create table "credit_ledger" ("id" bigserial primary key, "customer_id" uuid not null, "currency" varchar(64) not null, "amount" bigint not null, "balance_after" bigint not null, "reason" varchar(32) not null, "key" varchar(600) not null, "store_transaction_id" varchar(255) null, "created_at" timestamptz not null);`);
    this.addSql(`create index "credit_ledger_customer_idx" on "credit_ledger" ("customer_id", "currency", "created_at");`);
    this.addSql(`alter table "credit_ledger" add constraint "credit_ledger_key_unique" unique ("key");`);

    this.addSql(`create table "credit_balance" ("customer_id" uuid not null, "currency" varchar(64) not null, "balance" bigint not null, "updated_at" timestamptz not null, primary key ("customer_id", "currency"));`);

    this.addSql(`create table "event" ("id" bigserial primary key, "key" varchar(700) not null, "customer_id" uuid null, "type" text not null, "occurred_at" timestamptz not null, "recorded_at" timestamptz not null, "store" text null, "environment" text null, "product_id" varchar(200) null, "lineage_id" varchar(512) null, "store_transaction_id" varchar(255) null, "data" jsonb not null);`);
    this.addSql(`create index "event_customer_occurred_idx" on "event" ("customer_id", "occurred_at");`);
    this.addSql(`create index "event_type_occurred_idx" on "event" ("type", "occurred_at");`);
    this.addSql(`create index "event_lineage_idx" on "event" ("store", "lineage_id");`);
    this.addSql(`alter table "event" add constraint "event_key_unique" unique ("key");`);

    this.addSql(`create table "entitlement_grant" ("id" bigserial primary key, "customer_id" uuid not null, "entitlement" varchar(64) not null, "store" text not null, "environment" text not null, "product_id" varchar(200) not null, "source_key" varchar(600) not null, "store_transaction_id" varchar(255) not null, "reason" varchar(16) not null, "starts_at" timestamptz not null, "ends_at" timestamptz null, "created_at" timestamptz not null, "superseded_at" timestamptz null);`);
    this.addSql(`create index "entitlement_grant_customer_current_idx" on "entitlement_grant" ("customer_id", "entitlement") where superseded_at is null;`);
    this.addSql(`create index "entitlement_grant_source_idx" on "entitlement_grant" ("source_key");`);

    this.addSql(`create table "product" ("store" text not null, "product_id" varchar(200) not null, "kind" text not null, "entitlements" jsonb not null, "duration_days" int null, "credits" jsonb not null, "display_name" varchar(200) null, "updated_at" timestamptz not null, primary key ("store", "product_id"));`);

    this.addSql(`create table "purchase" ("id" uuid not null, "customer_id" uuid null, "store" text not null, "environment" text not null, "store_transaction_id" varchar(255) not null, "product_id" varchar(200) not null, "kind" text null, "lineage_id" varchar(512) not null, "purchase_token" text null, "purchased_at" timestamptz not null, "expires_at" timestamptz null, "revoked_at" timestamptz null, "revocation_reason" varchar(64) null, "ownership" text not null, "quantity" int not null default 1, "order_token" varchar(255) null, "price_micros" bigint null, "currency" varchar(3) null, "offer_type" varchar(32) null, "raw" jsonb not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "purchase_customer_idx" on "purchase" ("customer_id");`);
    this.addSql(`create index "purchase_lineage_idx" on "purchase" ("store", "lineage_id");`);
    this.addSql(`alter table "purchase" add constraint "purchase_store_transaction_unique" unique ("store", "store_transaction_id");`);

    this.addSql(`create table "purchase_observation" ("id" bigserial primary key, "store" text not null, "lineage_id" varchar(512) not null, "store_transaction_id" varchar(255) not null, "fingerprint" varchar(64) not null, "observed_at" timestamptz not null, "snapshot" jsonb not null, "created_at" timestamptz not null);`);
    this.addSql(`create index "purchase_observation_lineage_idx" on "purchase_observation" ("store", "lineage_id", "observed_at");`);
    this.addSql(`alter table "purchase_observation" add constraint "purchase_observation_fingerprint_unique" unique ("store", "lineage_id", "fingerprint");`);

    this.addSql(`create table "purchase_order" ("id" uuid not null, "customer_id" uuid not null, "store" text null, "product_id" varchar(200) not null, "token" varchar(64) not null, "status" text not null, "purchase_id" uuid null, "created_at" timestamptz not null, "expires_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "purchase_order_customer_idx" on "purchase_order" ("customer_id", "product_id", "created_at");`);
    this.addSql(`alter table "purchase_order" add constraint "purchase_order_token_unique" unique ("token");`);

    this.addSql(`create table "subscription" ("id" uuid not null, "customer_id" uuid null, "store" text not null, "environment" text not null, "lineage_id" varchar(512) not null, "product_id" varchar(200) not null, "state" text not null, "original_purchased_at" timestamptz not null, "current_period_starts_at" timestamptz not null, "expires_at" timestamptz null, "grace_period_expires_at" timestamptz null, "auto_resume_at" timestamptz null, "will_renew" boolean not null, "ownership" text not null, "revoked_at" timestamptz null, "revocation_reason" varchar(64) null, "expiration_reason" varchar(32) null, "latest_transaction_id" varchar(255) not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "subscription_customer_idx" on "subscription" ("customer_id");`);
    this.addSql(`create index "subscription_state_expires_idx" on "subscription" ("state", "expires_at");`);
    this.addSql(`alter table "subscription" add constraint "subscription_store_lineage_unique" unique ("store", "lineage_id");`);

    this.addSql(`alter table "credit_ledger" add constraint "credit_ledger_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete restrict;`);

    this.addSql(`alter table "credit_balance" add constraint "credit_balance_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete restrict;`);

    this.addSql(`alter table "event" add constraint "event_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete restrict;`);
    this.addSql(`alter table "event" add constraint "event_type_check" check ("type" in ('INITIAL_PURCHASE', 'RENEWAL', 'CANCELLATION', 'UNCANCELLATION', 'BILLING_ISSUE', 'GRACE_PERIOD', 'ON_HOLD', 'BILLING_RECOVERY', 'PAUSE', 'RESUME', 'PRODUCT_CHANGE', 'EXPIRATION', 'REACTIVATION', 'REFUND', 'REFUND_REVERSED', 'REVOCATION', 'NON_RENEWING_PURCHASE', 'NON_CONSUMABLE_PURCHASE', 'CONSUMABLE_CREDIT', 'CREDIT_CLAWBACK', 'CREDIT_SPEND', 'TRANSFER'));`);
    this.addSql(`alter table "event" add constraint "event_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "event" add constraint "event_environment_check" check ("environment" in ('PRODUCTION', 'SANDBOX'));`);

    this.addSql(`alter table "entitlement_grant" add constraint "entitlement_grant_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete restrict;`);
    this.addSql(`alter table "entitlement_grant" add constraint "entitlement_grant_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "entitlement_grant" add constraint "entitlement_grant_environment_check" check ("environment" in ('PRODUCTION', 'SANDBOX'));`);

    this.addSql(`alter table "product" add constraint "product_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "product" add constraint "product_kind_check" check ("kind" in ('AUTO_RENEWABLE', 'NON_RENEWING', 'NON_CONSUMABLE', 'CONSUMABLE'));`);

    this.addSql(`alter table "purchase" add constraint "purchase_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete restrict;`);
    this.addSql(`alter table "purchase" add constraint "purchase_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "purchase" add constraint "purchase_environment_check" check ("environment" in ('PRODUCTION', 'SANDBOX'));`);
    this.addSql(`alter table "purchase" add constraint "purchase_kind_check" check ("kind" in ('AUTO_RENEWABLE', 'NON_RENEWING', 'NON_CONSUMABLE', 'CONSUMABLE'));`);
    this.addSql(`alter table "purchase" add constraint "purchase_ownership_check" check ("ownership" in ('PURCHASED', 'FAMILY_SHARED'));`);

    this.addSql(`alter table "purchase_observation" add constraint "purchase_observation_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);

    this.addSql(`alter table "purchase_order" add constraint "purchase_order_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete restrict;`);
    this.addSql(`alter table "purchase_order" add constraint "purchase_order_purchase_id_foreign" foreign key ("purchase_id") references "purchase" ("id") on delete set null;`);
    this.addSql(`alter table "purchase_order" add constraint "purchase_order_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "purchase_order" add constraint "purchase_order_status_check" check ("status" in ('CREATED', 'PAID', 'FULFILLED', 'EXPIRED', 'CANCELED'));`);

    this.addSql(`alter table "subscription" add constraint "subscription_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete restrict;`);
    this.addSql(`alter table "subscription" add constraint "subscription_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "subscription" add constraint "subscription_environment_check" check ("environment" in ('PRODUCTION', 'SANDBOX'));`);
    this.addSql(`alter table "subscription" add constraint "subscription_state_check" check ("state" in ('ACTIVE', 'CANCELED', 'GRACE', 'ON_HOLD', 'PAUSED', 'EXPIRED', 'REVOKED'));`);
    this.addSql(`alter table "subscription" add constraint "subscription_ownership_check" check ("ownership" in ('PURCHASED', 'FAMILY_SHARED'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "credit_ledger" drop constraint "credit_ledger_customer_id_foreign";`);
    this.addSql(`alter table "credit_balance" drop constraint "credit_balance_customer_id_foreign";`);
    this.addSql(`alter table "event" drop constraint "event_customer_id_foreign";`);
    this.addSql(`alter table "entitlement_grant" drop constraint "entitlement_grant_customer_id_foreign";`);
    this.addSql(`alter table "purchase" drop constraint "purchase_customer_id_foreign";`);
    this.addSql(`alter table "purchase_order" drop constraint "purchase_order_customer_id_foreign";`);
    this.addSql(`alter table "subscription" drop constraint "subscription_customer_id_foreign";`);
    this.addSql(`alter table "purchase_order" drop constraint "purchase_order_purchase_id_foreign";`);

    this.addSql(`drop table if exists "customer" cascade;`);
    this.addSql(`drop table if exists "credit_ledger" cascade;`);
    this.addSql(`drop table if exists "credit_balance" cascade;`);
    this.addSql(`drop table if exists "event" cascade;`);
    this.addSql(`drop table if exists "entitlement_grant" cascade;`);
    this.addSql(`drop table if exists "product" cascade;`);
    this.addSql(`drop table if exists "purchase" cascade;`);
    this.addSql(`drop table if exists "purchase_observation" cascade;`);
    this.addSql(`drop table if exists "purchase_order" cascade;`);
    this.addSql(`drop table if exists "subscription" cascade;`);
  }

}
