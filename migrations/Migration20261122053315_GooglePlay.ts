import { Migration } from '@mikro-orm/migrations';

export class Migration20261122053315_GooglePlay extends Migration {

  override name = 'Migration20261122053315_GooglePlay';

  override up(): void | Promise<void> {
    this.addSql(`create table "pending_proof" ("id" uuid not null, "store" text not null, "proof_key" varchar(600) not null, "app_user_id" varchar(255) not null, "proof" jsonb not null, "order_id" varchar(64) null, "status" text not null, "reason" varchar(64) not null, "attempts" int not null default 0, "next_attempt_at" timestamptz not null, "last_error" text null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "pending_proof_due_idx" on "pending_proof" ("status", "next_attempt_at");`);
    this.addSql(`alter table "pending_proof" add constraint "pending_proof_key_unique" unique ("store", "proof_key");`);

    this.addSql(`create table "store_cursor" ("key" varchar(255) not null, "value" text not null, "updated_at" timestamptz not null, primary key ("key"));`);

    this.addSql(`create table "store_notification" ("id" bigserial primary key, "store" text not null, "message_id" varchar(255) not null, "type" varchar(64) not null, "payload" jsonb not null, "status" text not null, "attempts" int not null default 0, "next_attempt_at" timestamptz not null, "last_error" text null, "received_at" timestamptz not null, "processed_at" timestamptz null);`);
    this.addSql(`create index "store_notification_due_idx" on "store_notification" ("status", "next_attempt_at");`);
    this.addSql(`alter table "store_notification" add constraint "store_notification_message_unique" unique ("store", "message_id");`);

    this.addSql(`create table "store_task" ("id" bigserial primary key, "store" text not null, "kind" text not null, "package_name" varchar(255) not null, "product_id" varchar(200) not null, "token" text not null, "status" text not null, "attempts" int not null default 0, "next_attempt_at" timestamptz not null, "last_error" text null, "created_at" timestamptz not null, "done_at" timestamptz null);`);
    this.addSql(`create index "store_task_due_idx" on "store_task" ("status", "next_attempt_at");`);
    this.addSql(`alter table "store_task" add constraint "store_task_kind_token_unique" unique ("kind", "token");`);

    this.addSql(`alter table "pending_proof" add constraint "pending_proof_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "pending_proof" add constraint "pending_proof_status_check" check ("status" in ('PENDING', 'VERIFIED', 'REJECTED'));`);

    this.addSql(`alter table "store_notification" add constraint "store_notification_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "store_notification" add constraint "store_notification_status_check" check ("status" in ('RECEIVED', 'PROCESSED', 'IGNORED'));`);

    this.addSql(`alter table "store_task" add constraint "store_task_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    this.addSql(`alter table "store_task" add constraint "store_task_kind_check" check ("kind" in ('ACKNOWLEDGE_PRODUCT', 'ACKNOWLEDGE_SUBSCRIPTION', 'CONSUME_PRODUCT'));`);
    this.addSql(`alter table "store_task" add constraint "store_task_status_check" check ("status" in ('PENDING', 'DONE'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "pending_proof" cascade;`);
    this.addSql(`drop table if exists "store_cursor" cascade;`);
    this.addSql(`drop table if exists "store_notification" cascade;`);
    this.addSql(`drop table if exists "store_task" cascade;`);
  }

}
