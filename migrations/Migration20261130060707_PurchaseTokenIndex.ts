import { Migration } from '@mikro-orm/migrations';

export class Migration20261130060707_PurchaseTokenIndex extends Migration {

  override name = 'Migration20261130060707_PurchaseTokenIndex';

  override up(): void | Promise<void> {
    this.addSql(`create index "purchase_token_idx" on "purchase" ("store", "purchase_token") where purchase_token is not null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "purchase_token_idx";`);
  }

}
