import { Migration } from '@mikro-orm/migrations';

export class Migration20261122080639_KeptProofsByCustomer extends Migration {

  override name = 'Migration20261122080639_KeptProofsByCustomer';

  override up(): void | Promise<void> {
    this.addSql(`create index "pending_proof_customer_idx" on "pending_proof" ("app_user_id", "status", "created_at");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "pending_proof_customer_idx";`);
  }

}
