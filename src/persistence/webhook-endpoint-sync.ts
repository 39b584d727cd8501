// Mirrors WEBHOOK_URLS into the webhook_endpoint table at start-up, like the catalog sync: configured URLs are
// active rows (new events get a delivery for each), every other row is inactive. Rows are never deleted, so the
// delivery log keeps its URLs, and a URL configured again resumes where it stopped.
import type { Orm } from './orm.js';

export async function syncWebhookEndpoints(orm: Orm, urls: readonly string[]): Promise<void> {
  await orm.em.fork().transactional(async (em) => {
    for (const url of urls) {
      await em.execute(
        `insert into webhook_endpoint (url, active, created_at) values (?, true, now())
         on conflict (url) do update set active = true`,
        [url],
      );
    }
    await em.execute(
      urls.length === 0
        ? 'update webhook_endpoint set active = false where active'
        : `update webhook_endpoint set active = false where active and url not in (${urls.map(() => '?').join(', ')})`,
      [...urls],
    );
  });
}
