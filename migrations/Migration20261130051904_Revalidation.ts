import { Migration } from '@mikro-orm/migrations';

export class Migration20261130051904_Revalidation extends Migration {

  override name = 'Migration20261130051904_Revalidation';

  override up(): void | Promise<void> {
    this.addSql(`create table "job_run" ("key" varchar(255) not null, "job" varchar(64) not null, "slot" timestamptz not null, "instance" varchar(128) not null, "started_at" timestamptz not null, "finished_at" timestamptz null, "outcome" text null, primary key ("key"));`);
    this.addSql(`create index "job_run_job_slot_idx" on "job_run" ("job", "slot");`);

    this.addSql(`create table "store_budget" ("store" text not null, "tokens" double precision not null, "refilled_at" timestamptz not null, "consecutive_failures" int not null default 0, "paused_until" timestamptz null, primary key ("store"));`);

    this.addSql(`alter table "subscription" add "next_check_at" timestamptz null, add "check_attempts" int not null default 0, add "last_checked_at" timestamptz null, add "app_receipt" text null;`);
    this.addSql(`create index "subscription_next_check_idx" on "subscription" ("store", "next_check_at") where next_check_at is not null;`);

    this.addSql(`alter table "store_budget" add constraint "store_budget_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
    // Subscriptions stored before scheduled re-checks existed: every one that can still change is checked within
    // the first hour (spread, so an upgrade does not start with one burst against the stores).
    this.addSql(`update "subscription" set "next_check_at" = now() + random() * interval '1 hour' where "state" not in ('EXPIRED', 'REVOKED') and "customer_id" is not null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "job_run" cascade;`);
    this.addSql(`drop table if exists "store_budget" cascade;`);

    this.addSql(`drop index "subscription_next_check_idx";`);
    this.addSql(`alter table "subscription" drop column "next_check_at", drop column "check_attempts", drop column "last_checked_at", drop column "app_receipt";`);
  }

}
