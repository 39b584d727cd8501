import { Migration } from '@mikro-orm/migrations';

export class Migration20261122060215_VoidedPurchases extends Migration {

  override name = 'Migration20261122060215_VoidedPurchases';

  override up(): void | Promise<void> {
    this.addSql(`create table "voided_purchase" ("id" bigserial primary key, "store" text not null, "purchase_token" text not null, "order_id" varchar(255) not null, "voided_at" timestamptz not null, "reason" varchar(32) not null, "recorded_at" timestamptz not null);`);
    this.addSql(`alter table "voided_purchase" add constraint "voided_purchase_token_order_unique" unique ("store", "purchase_token", "order_id");`);

    this.addSql(`alter table "store_notification" add "authenticated" boolean not null default false;`);

    this.addSql(`alter table "voided_purchase" add constraint "voided_purchase_store_check" check ("store" in ('APP_STORE', 'PLAY_STORE'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "voided_purchase" cascade;`);

    this.addSql(`alter table "store_notification" drop column "authenticated";`);
  }

}
