import { Migration } from '@mikro-orm/migrations';

export class Migration20261203123500_NotificationFailed extends Migration {

  override name = 'Migration20261203123500_NotificationFailed';

  override up(): void | Promise<void> {
    this.addSql(`alter table "store_notification" drop constraint "store_notification_status_check";`);
    this.addSql(`alter table "store_notification" add constraint "store_notification_status_check" check ("status" in ('RECEIVED', 'PROCESSED', 'IGNORED', 'FAILED'));`);
  }

  override down(): void | Promise<void> {
    // Parked notifications go back to the queue: the older schema has no other place for them.
    this.addSql(`update "store_notification" set "status" = 'RECEIVED' where "status" = 'FAILED';`);
    this.addSql(`alter table "store_notification" drop constraint "store_notification_status_check";`);
    this.addSql(`alter table "store_notification" add constraint "store_notification_status_check" check ("status" in ('RECEIVED', 'PROCESSED', 'IGNORED'));`);
  }

}
