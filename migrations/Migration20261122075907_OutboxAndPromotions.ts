import { Migration } from '@mikro-orm/migrations';

export class Migration20261122075907_OutboxAndPromotions extends Migration {

  override name = 'Migration20261122075907_OutboxAndPromotions';

  override up(): void | Promise<void> {
    this.addSql(`create table "promotional_entitlement" ("id" uuid not null, "customer_id" uuid not null, "entitlement" varchar(64) not null, "starts_at" timestamptz not null, "expires_at" timestamptz null, "reason" text not null, "revoked_at" timestamptz null, "revoke_reason" text null, "created_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "promotional_entitlement_customer_idx" on "promotional_entitlement" ("customer_id");`);

    this.addSql(`create table "webhook_endpoint" ("id" serial primary key, "url" text not null, "active" boolean not null default true, "created_at" timestamptz not null);`);
    this.addSql(`alter table "webhook_endpoint" add constraint "webhook_endpoint_url_unique" unique ("url");`);

    this.addSql(`create table "webhook_delivery" ("id" bigserial primary key, "endpoint_id" int not null, "event_id" bigint not null, "customer_id" uuid null, "status" text not null, "attempts" int not null default 0, "next_attempt_at" timestamptz not null, "last_attempt_at" timestamptz null, "response_status" int null, "last_error" text null, "delivered_at" timestamptz null, "created_at" timestamptz not null);`);
    this.addSql(`create index "webhook_delivery_due_idx" on "webhook_delivery" ("status", "next_attempt_at");`);
    this.addSql(`create index "webhook_delivery_customer_idx" on "webhook_delivery" ("endpoint_id", "customer_id", "id");`);
    this.addSql(`alter table "webhook_delivery" add constraint "webhook_delivery_endpoint_event_unique" unique ("endpoint_id", "event_id");`);

    this.addSql(`alter table "event" drop constraint "event_type_check";`);
    this.addSql(`alter table "event" add constraint "event_type_check" check ("type" in ('INITIAL_PURCHASE', 'RENEWAL', 'CANCELLATION', 'UNCANCELLATION', 'BILLING_ISSUE', 'GRACE_PERIOD', 'ON_HOLD', 'BILLING_RECOVERY', 'PAUSE', 'RESUME', 'PRODUCT_CHANGE', 'EXPIRATION', 'REACTIVATION', 'REFUND', 'REFUND_REVERSED', 'REVOCATION', 'NON_RENEWING_PURCHASE', 'NON_CONSUMABLE_PURCHASE', 'CONSUMABLE_CREDIT', 'CREDIT_CLAWBACK', 'CREDIT_SPEND', 'TRANSFER', 'PROMOTIONAL_GRANT', 'PROMOTIONAL_REVOCATION'));`);

    this.addSql(`alter table "promotional_entitlement" add constraint "promotional_entitlement_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete cascade;`);

    this.addSql(`alter table "webhook_delivery" add constraint "webhook_delivery_endpoint_id_foreign" foreign key ("endpoint_id") references "webhook_endpoint" ("id") on delete cascade;`);
    this.addSql(`alter table "webhook_delivery" add constraint "webhook_delivery_event_id_foreign" foreign key ("event_id") references "event" ("id") on delete cascade;`);
    this.addSql(`alter table "webhook_delivery" add constraint "webhook_delivery_customer_id_foreign" foreign key ("customer_id") references "customer" ("id") on delete cascade;`);
    this.addSql(`alter table "webhook_delivery" add constraint "webhook_delivery_status_check" check ("status" in ('PENDING', 'DELIVERED', 'FAILED'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "webhook_delivery" drop constraint "webhook_delivery_endpoint_id_foreign";`);

    this.addSql(`drop table if exists "promotional_entitlement" cascade;`);
    this.addSql(`drop table if exists "webhook_endpoint" cascade;`);
    this.addSql(`drop table if exists "webhook_delivery" cascade;`);

    this.addSql(`alter table "event" drop constraint "event_type_check";`);
    this.addSql(`alter table "event" add constraint "event_type_check" check ("type" in ('INITIAL_PURCHASE', 'RENEWAL', 'CANCELLATION', 'UNCANCELLATION', 'BILLING_ISSUE', 'GRACE_PERIOD', 'ON_HOLD', 'BILLING_RECOVERY', 'PAUSE', 'RESUME', 'PRODUCT_CHANGE', 'EXPIRATION', 'REACTIVATION', 'REFUND', 'REFUND_REVERSED', 'REVOCATION', 'NON_RENEWING_PURCHASE', 'NON_CONSUMABLE_PURCHASE', 'CONSUMABLE_CREDIT', 'CREDIT_CLAWBACK', 'CREDIT_SPEND', 'TRANSFER'));`);
  }

}
