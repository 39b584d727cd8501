// Mirrors the catalog into the product table so SQL users (analytics, BI) can join on it.
import type { Catalog } from '../domain/catalog.js';
import type { Orm } from './orm.js';

export async function syncCatalog(orm: Orm, catalog: Catalog): Promise<void> {
  await orm.em.fork().transactional(async (em) => {
    for (const p of catalog.products) {
      await em.execute(
        `insert into product (store, product_id, kind, entitlements, duration_days, credits, display_name, updated_at)
         values (?, ?, ?, ?, ?, ?, ?, now())
         on conflict (store, product_id) do update set kind = excluded.kind, entitlements = excluded.entitlements,
           duration_days = excluded.duration_days, credits = excluded.credits, display_name = excluded.display_name,
           updated_at = now()`,
        [p.store, p.productId, p.kind, JSON.stringify(p.entitlements), p.durationDays, JSON.stringify(p.credits), p.displayName],
      );
    }
  });
}
