import { Migration } from '@mikro-orm/migrations';

export class Migration20261122074244_NotificationOutcome extends Migration {

  override name = 'Migration20261122074244_NotificationOutcome';

  override up(): void | Promise<void> {
    this.addSql(`alter table "store_notification" add "outcome" text null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "store_notification" drop column "outcome";`);
  }

}
