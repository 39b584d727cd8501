import { Migration } from '@mikro-orm/migrations';

export class Migration20261122060715_StoreTaskFailed extends Migration {

  override name = 'Migration20261122060715_StoreTaskFailed';

  override up(): void | Promise<void> {
    this.addSql(`alter table "store_task" drop constraint "store_task_status_check";`);
    this.addSql(`alter table "store_task" add constraint "store_task_status_check" check ("status" in ('PENDING', 'DONE', 'FAILED'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "store_task" drop constraint "store_task_status_check";`);
    this.addSql(`alter table "store_task" add constraint "store_task_status_check" check ("status" in ('PENDING', 'DONE'));`);
  }

}
