// Google Play real-time developer notifications (Pub/Sub push) and the Voided Purchases API. A notification
// says what changed, not the state: every one is stored first (deduplicated by Pub/Sub messageId), then the
// purchase is re-read from Google and applied through the same recorder as submitReceipt. Anyone can push when
// push authentication is off, so intake bounds what it stores: a push larger or shaped differently than a real
// notification is refused, and unauthenticated pushes are rate-limited before anything is stored or Google asked.
import type { Logger } from 'pino';
import type { Orm } from '../persistence/orm.js';
import { lineageOfToken, ownerOfLineage, ownerOfOrderToken, recordVoided } from '../persistence/repository.js';
import { decodeSnapshot } from '../persistence/snapshot-codec.js';
import type { GooglePlayAdapter } from '../stores/google/adapter.js';
import type { GoogleReading } from '../stores/google/normalize.js';
import { DEFAULT_JOB_TIMING, type JobTiming } from '../domain/job-timing.js';
import { TokenBucket } from '../domain/token-bucket.js';
import { NotificationInbox, unstorableReason } from './notification-inbox.js';
import type { PendingProofs } from './pending-proofs.js';
import type { PurchaseRecorder } from './purchase-recorder.js';
import type { StoreTaskRunner } from './store-tasks.js';

type Row = Record<string, unknown>;

const DAY_MS = 86_400_000;

/**
 * The decoded `message.data` of one notification. Real ones are a few hundred bytes (the purchase token, the
 * longest part, is about 150 characters); 8 KiB leaves room for every field at its longest and for new ones.
 */
export const MAX_GOOGLE_NOTIFICATION_DATA_BYTES = 8 * 1024;
/**
 * The HTTP body of one push, for the /notifications/google route: the Pub/Sub envelope around the data (base64,
 * a third larger), its ids, publish time and attributes. Pub/Sub itself allows 10 MB messages; a Play
 * notification never comes close.
 */
export const MAX_GOOGLE_PUSH_BYTES = 64 * 1024;
/**
 * Unauthenticated pushes per second this instance stores (and asks Google about), and how many at once. Far above
 * what an app's real notifications need on one instance; beyond it they get 429 and Pub/Sub delivers them again
 * with backoff, so nothing genuine is lost. Authenticated pushes are not limited.
 */
export const UNAUTHENTICATED_PUSHES_PER_SECOND = 10;
export const UNAUTHENTICATED_PUSH_BURST = 100;

/** Longest values Google sends, with room to spare; beyond them a field is not from Google. */
const FIELD_LIMITS = { purchaseToken: 512, packageName: 255, subscriptionId: 200, sku: 200, orderId: 255, version: 32 } as const;

export const SUBSCRIPTION_NOTIFICATION_TYPES: Record<number, string> = {
  1: 'SUBSCRIPTION_RECOVERED',
  2: 'SUBSCRIPTION_RENEWED',
  3: 'SUBSCRIPTION_CANCELED',
  4: 'SUBSCRIPTION_PURCHASED',
  5: 'SUBSCRIPTION_ON_HOLD',
  6: 'SUBSCRIPTION_IN_GRACE_PERIOD',
  7: 'SUBSCRIPTION_RESTARTED',
  8: 'SUBSCRIPTION_PRICE_CHANGE_CONFIRMED',
  9: 'SUBSCRIPTION_DEFERRED',
  10: 'SUBSCRIPTION_PAUSED',
  11: 'SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED',
  12: 'SUBSCRIPTION_REVOKED',
  13: 'SUBSCRIPTION_EXPIRED',
  19: 'SUBSCRIPTION_PRICE_CHANGE_UPDATED',
  20: 'SUBSCRIPTION_PENDING_PURCHASE_CANCELED',
};
export const ONE_TIME_NOTIFICATION_TYPES: Record<number, string> = { 1: 'ONE_TIME_PRODUCT_PURCHASED', 2: 'ONE_TIME_PRODUCT_CANCELED' };

/** The decoded `message.data` of a Play notification. */
export interface DeveloperNotification {
  version?: string;
  packageName?: string;
  eventTimeMillis?: string;
  subscriptionNotification?: { notificationType?: number; purchaseToken?: string; subscriptionId?: string };
  oneTimeProductNotification?: { notificationType?: number; purchaseToken?: string; sku?: string };
  voidedPurchaseNotification?: { purchaseToken?: string; orderId?: string; productType?: number; refundType?: number };
  testNotification?: { version?: string };
}

export function notificationType(n: DeveloperNotification): string {
  if (n.subscriptionNotification) return SUBSCRIPTION_NOTIFICATION_TYPES[n.subscriptionNotification.notificationType ?? -1] ?? `SUBSCRIPTION_UNKNOWN_${n.subscriptionNotification.notificationType}`;
  if (n.oneTimeProductNotification) return ONE_TIME_NOTIFICATION_TYPES[n.oneTimeProductNotification.notificationType ?? -1] ?? `ONE_TIME_UNKNOWN_${n.oneTimeProductNotification.notificationType}`;
  if (n.voidedPurchaseNotification) return 'VOIDED_PURCHASE';
  if (n.testNotification) return 'TEST';
  return 'UNKNOWN';
}

/** Thrown when the store could not be read: the notification stays stored and is processed again later. */
class RetryLater extends Error {}

export type IntakeResult =
  | { status: 200; duplicate: boolean; outcome: string }
  /** Malformed, or not what a Play notification can be: never stored. */
  | { status: 400; error: string }
  /** An unauthenticated push beyond the rate limit: not stored; Pub/Sub delivers it again later. */
  | { status: 429; error: string; retryAfterSeconds: number };

/** A push envelope that passed every check: safe to store. */
export interface ParsedPush {
  messageId: string;
  notification: DeveloperNotification;
}

/**
 * Checks a Pub/Sub push envelope before anything is stored: its shape, the size of the data, every string
 * storable by PostgreSQL (no U+0000, no lone surrogate), and the known fields of the types and lengths Google
 * uses. Returns why it is refused, or what to store.
 */
export function parsePush(envelope: unknown): ParsedPush | { error: string } {
  const message = (envelope as { message?: { data?: unknown; messageId?: unknown; message_id?: unknown } } | null)?.message;
  const messageId = message?.messageId ?? message?.message_id;
  if (!message || typeof messageId !== 'string' || messageId.length === 0 || messageId.length > 255 || typeof message.data !== 'string') {
    return { error: 'expected a Pub/Sub push envelope: {"message": {"data": "<base64>", "messageId": "..."}, "subscription": "..."}' };
  }
  const idProblem = unstorableReason(messageId);
  if (idProblem) return { error: `message.messageId ${idProblem}` };
  // Checked on the encoded text first, so an oversized push is never decoded.
  const tooLarge = `message.data is larger than a Play notification can be (at most ${MAX_GOOGLE_NOTIFICATION_DATA_BYTES} bytes decoded)`;
  if (message.data.length > Math.ceil(MAX_GOOGLE_NOTIFICATION_DATA_BYTES / 3) * 4 + 4) return { error: tooLarge };
  const decoded = Buffer.from(message.data, 'base64');
  if (decoded.length > MAX_GOOGLE_NOTIFICATION_DATA_BYTES) return { error: tooLarge };
  let notification: unknown;
  try {
    notification = JSON.parse(decoded.toString('utf8'));
  } catch {
    return { error: 'message.data is not base64-encoded JSON' };
  }
  if (typeof notification !== 'object' || notification === null || Array.isArray(notification)) return { error: 'message.data is not base64-encoded JSON' };
  const problem = unstorableReason(notification) ?? fieldProblem(notification as Record<string, unknown>);
  if (problem) return { error: `message.data ${problem}` };
  return { messageId, notification: notification as DeveloperNotification };
}

/** The known fields of the types and lengths Google sends; absent (or null) is fine, anything else is not. */
function fieldProblem(n: Record<string, unknown>): string | null {
  const absent = (v: unknown) => v === undefined || v === null;
  const text = (v: unknown, path: string, max: number) =>
    absent(v) ? null : typeof v !== 'string' ? `${path} is not a string` : v.length > max ? `${path} is longer than ${max} characters` : null;
  const whole = (v: unknown, path: string) => (absent(v) || Number.isSafeInteger(v) ? null : `${path} is not a whole number`);
  const object = (v: unknown, path: string) => (absent(v) || (typeof v === 'object' && !Array.isArray(v)) ? null : `${path} is not an object`);
  const millis = (v: unknown, path: string) =>
    absent(v) || (typeof v === 'string' && /^\d{1,15}$/.test(v)) || (Number.isSafeInteger(v) && (v as number) >= 0) ? null : `${path} is not a time in milliseconds`;
  const sub = (n.subscriptionNotification ?? {}) as Record<string, unknown>;
  const oneTime = (n.oneTimeProductNotification ?? {}) as Record<string, unknown>;
  const voided = (n.voidedPurchaseNotification ?? {}) as Record<string, unknown>;
  return (
    text(n.version, 'version', FIELD_LIMITS.version) ??
    text(n.packageName, 'packageName', FIELD_LIMITS.packageName) ??
    millis(n.eventTimeMillis, 'eventTimeMillis') ??
    object(n.subscriptionNotification, 'subscriptionNotification') ??
    object(n.oneTimeProductNotification, 'oneTimeProductNotification') ??
    object(n.voidedPurchaseNotification, 'voidedPurchaseNotification') ??
    object(n.testNotification, 'testNotification') ??
    whole(sub.notificationType, 'subscriptionNotification.notificationType') ??
    text(sub.purchaseToken, 'subscriptionNotification.purchaseToken', FIELD_LIMITS.purchaseToken) ??
    text(sub.subscriptionId, 'subscriptionNotification.subscriptionId', FIELD_LIMITS.subscriptionId) ??
    whole(oneTime.notificationType, 'oneTimeProductNotification.notificationType') ??
    text(oneTime.purchaseToken, 'oneTimeProductNotification.purchaseToken', FIELD_LIMITS.purchaseToken) ??
    text(oneTime.sku, 'oneTimeProductNotification.sku', FIELD_LIMITS.sku) ??
    text(voided.purchaseToken, 'voidedPurchaseNotification.purchaseToken', FIELD_LIMITS.purchaseToken) ??
    text(voided.orderId, 'voidedPurchaseNotification.orderId', FIELD_LIMITS.orderId) ??
    whole(voided.productType, 'voidedPurchaseNotification.productType') ??
    whole(voided.refundType, 'voidedPurchaseNotification.refundType')
  );
}

export interface GoogleIntakeOptions {
  /** Whether pushes must carry a verified Pub/Sub token (GOOGLE_PUBSUB_AUDIENCE); off is logged at start-up. */
  pushAuthenticationConfigured: boolean;
  /** Monotonic milliseconds for the rate limit (the injected clock may stand still in tests). */
  monotonicMs?: () => number;
}

export class GoogleNotifications {
  private readonly inbox: NotificationInbox<DeveloperNotification>;
  private readonly monotonicMs: () => number;
  private readonly unauthenticatedPushes: TokenBucket;

  constructor(
    private readonly orm: Orm,
    private readonly adapter: GooglePlayAdapter,
    private readonly recorder: PurchaseRecorder,
    private readonly pending: PendingProofs,
    private readonly tasks: StoreTaskRunner,
    private readonly clock: () => Date,
    private readonly log: Logger,
    timing: JobTiming = DEFAULT_JOB_TIMING,
    options: GoogleIntakeOptions = { pushAuthenticationConfigured: false },
  ) {
    this.inbox = new NotificationInbox(orm, 'PLAY_STORE', clock, timing);
    this.monotonicMs = options.monotonicMs ?? (() => performance.now());
    this.unauthenticatedPushes = new TokenBucket(UNAUTHENTICATED_PUSHES_PER_SECOND, UNAUTHENTICATED_PUSH_BURST, this.monotonicMs());
    if (!options.pushAuthenticationConfigured) {
      log.warn(
        { setting: 'GOOGLE_PUBSUB_AUDIENCE', perSecond: UNAUTHENTICATED_PUSHES_PER_SECOND, burst: UNAUTHENTICATED_PUSH_BURST },
        'Google push authentication is off (GOOGLE_PUBSUB_AUDIENCE not set): anyone can post to /notifications/google. ' +
          'Such pushes never grant or revoke anything by themselves (purchases are re-read from Google, refunds need the ' +
          `Voided Purchases API), but they are limited to ${UNAUTHENTICATED_PUSHES_PER_SECOND}/s per instance (burst ` +
          `${UNAUTHENTICATED_PUSH_BURST}); beyond that they get 429. Enable authentication on the Pub/Sub push subscription ` +
          'and set GOOGLE_PUBSUB_AUDIENCE and GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL.',
      );
    }
  }

  /**
   * Takes a Pub/Sub push envelope. Malformed, or not what a Play notification can be: 400. An unauthenticated
   * push over the rate limit: 429. Stored (or already stored): 200, whatever processing does next. A database
   * failure throws, so the endpoint answers 5xx and Pub/Sub delivers it again.
   */
  async intake(envelope: unknown, authenticated: boolean): Promise<IntakeResult> {
    const parsed = parsePush(envelope);
    if ('error' in parsed) return { status: 400, error: parsed.error };
    // Checked after parsing (garbage costs no token) and before anything is stored or Google is asked.
    if (!authenticated) {
      const taken = this.unauthenticatedPushes.take(this.monotonicMs());
      if (!taken.ok) {
        return { status: 429, error: `too many unauthenticated pushes (more than ${UNAUTHENTICATED_PUSHES_PER_SECOND}/s); deliver it again later`, retryAfterSeconds: taken.retryAfterSeconds };
      }
    }
    const { messageId, notification } = parsed;
    const id = await this.inbox.receive(messageId, notificationType(notification), notification, authenticated);
    if (id === null) return { status: 200, duplicate: true, outcome: 'already received' };
    const outcome = await this.processOne(id, notification, 1, authenticated);
    return { status: 200, duplicate: false, outcome };
  }

  /** Processes stored notifications whose earlier processing could not reach Google. */
  async processDue(now: Date, limit = 50): Promise<number> {
    const due = await this.inbox.claimDue(now, limit);
    for (const n of due) await this.processOne(n.id, n.payload, n.attempts, n.authenticated);
    return due.length;
  }

  private async processOne(id: number, n: DeveloperNotification, attempts: number, authenticated: boolean): Promise<string> {
    try {
      const outcome = await this.apply(n, authenticated);
      await this.inbox.done(id, outcome);
      return outcome;
    } catch (err) {
      if (!(err instanceof RetryLater)) this.log.error({ err, notification: id }, 'processing a Google notification failed; it will be retried');
      const next = await this.inbox.retryLater(id, attempts, (err as Error).message);
      if (next === 'RETRY_LATER') return 'kept for retry';
      this.log.error({ notification: id, attempts, error: (err as Error).message }, 'a Google notification kept failing: parked as FAILED, not retried');
      return `failed after ${attempts} attempts`;
    }
  }

  private async apply(n: DeveloperNotification, authenticated: boolean): Promise<string> {
    const packageName = n.packageName ?? '';
    if (n.testNotification) return 'ignored: test notification';
    if (!this.adapter.packageNames.includes(packageName)) {
      this.log.warn({ packageName }, 'Google notification for a package that is not configured (GOOGLE_PACKAGE_NAMES)');
      return `ignored: package ${packageName} is not configured`;
    }
    const eventTime = n.eventTimeMillis ? new Date(Number(n.eventTimeMillis)) : this.clock();
    if (n.voidedPurchaseNotification?.purchaseToken) {
      const v = n.voidedPurchaseNotification;
      if (v.refundType === 2) {
        this.log.warn({ token: v.purchaseToken, orderId: v.orderId }, 'quantity-based partial refund from Google: recorded, not applied (no partial clawback yet)');
        return 'ignored: quantity-based partial refund';
      }
      // A refund revokes access and claws back credits: act on an authenticated push, or on Google's own list.
      if (authenticated) return this.revoke(v.purchaseToken!, v.orderId ?? null, eventTime, 'VOIDED');
      return this.revokeIfListed(packageName, v.purchaseToken!, v.orderId ?? null, eventTime);
    }
    if (n.subscriptionNotification?.purchaseToken) {
      const { purchaseToken, subscriptionId, notificationType: type } = n.subscriptionNotification;
      // A revocation is not visible in the subscription resource. Unauthenticated pushes leave it to the
      // Voided Purchases API, which lists revoked subscriptions too.
      if (type === 12) {
        if (authenticated) await this.revoke(purchaseToken, null, eventTime, 'REVOKED');
        else await this.revokeIfListed(packageName, purchaseToken, null, eventTime);
      }
      const product = subscriptionId ?? (await this.storedProductOf(purchaseToken)) ?? (await this.lookUpSubscriptionProduct(packageName, purchaseToken));
      // Google refused the token outright: there is nothing to re-read.
      if (typeof product !== 'string') return this.applyReading(product, purchaseToken);
      return this.reread(packageName, product, purchaseToken);
    }
    if (n.oneTimeProductNotification?.purchaseToken && n.oneTimeProductNotification.sku) {
      return this.reread(packageName, n.oneTimeProductNotification.sku, n.oneTimeProductNotification.purchaseToken);
    }
    return 'ignored: unknown notification type';
  }

  /** Re-reads a purchase from Google and applies it to its owner (or keeps it unowned). */
  private async reread(packageName: string, productId: string, token: string): Promise<string> {
    const reading = await this.adapter.read(packageName, productId, token);
    return this.applyReading(reading, token);
  }

  private async applyReading(reading: GoogleReading, token: string): Promise<string> {
    if (reading.status !== 'VERIFIED') {
      if (reading.status === 'PENDING') {
        if (reading.reason === 'PURCHASE_PENDING') return 'payment still pending';
        throw new RetryLater(reading.message);
      }
      // Google's answer is final: retrying cannot change it. Only a kept proof of the token has anything to close;
      // otherwise (a forged or foreign token, typically) the notification changed nothing.
      const owner = await this.pending.ownerOfToken(token);
      if (!owner) return `ignored: rejected by Google (${reading.reason}), and no kept proof was waiting for it`;
      await this.pending.resolveGoogleToken(token, 'REJECTED', reading.reason);
      return `rejected by Google: ${reading.reason}`;
    }
    const owner = await this.ownerOf(token, reading.purchase.orderToken, reading.purchase.previousLineageToken);
    if (!owner) {
      await this.recorder.keepUnowned([reading.purchase]);
      return 'kept unowned until a customer submits it';
    }
    const outcome = await this.recorder.record(owner, [reading.purchase], this.clock(), { followUps: reading.followUps, fromNotification: true });
    await this.pending.resolveGoogleToken(token, 'VERIFIED', 'OK');
    this.tasks.runSoon(outcome.queuedTaskIds);
    return outcome.foreignTransactionIds.length > 0 ? 'belongs to another customer' : `applied to ${owner}`;
  }

  /**
   * Revokes a voided purchase: the latest statement of the voided transaction (the given order, or the token's
   * latest transaction) again, now with its revocation. Needs no call to Google.
   */
  async revoke(token: string, orderId: string | null, at: Date, reason: string): Promise<string> {
    const conn = this.orm.em.getConnection();
    // Remembered first: a refund for a purchase not stored yet applies when the purchase arrives.
    await this.orm.em.fork().transactional((em) => recordVoided(em, 'PLAY_STORE', token, orderId, at, reason));
    const rows = (await conn.execute(
      `select p.store_transaction_id, p.lineage_id, c.app_user_id
       from purchase p left join customer c on c.id = p.customer_id
       where p.store = 'PLAY_STORE' and p.purchase_token = ? ${orderId ? 'and p.store_transaction_id = ?' : ''}
       order by p.purchased_at desc limit 1`,
      orderId ? [token, orderId] : [token],
    )) as Row[];
    const row = rows[0];
    if (!row) return 'voided purchase recorded; it applies when the purchase is seen';
    const [latest] = (await conn.execute(
      `select snapshot from purchase_observation where store = 'PLAY_STORE' and lineage_id = ? and store_transaction_id = ?
       order by observed_at desc, id desc limit 1`,
      [row.lineage_id, row.store_transaction_id],
    )) as Row[];
    const snapshot = decodeSnapshot(latest!.snapshot as Row);
    if (snapshot.revokedAt) return 'already revoked';
    // Observed now (strictly after the statement it amends), so it is the transaction's latest statement.
    const observedAt = new Date(Math.max(this.clock().getTime(), snapshot.observedAt.getTime() + 1));
    const revoked = { ...snapshot, revokedAt: at, revocationReason: reason, observedAt };
    if (!row.app_user_id) {
      await this.recorder.keepUnowned([revoked]);
      return 'revoked (unowned)';
    }
    await this.recorder.record(row.app_user_id as string, [revoked], this.clock());
    return `revoked for ${row.app_user_id as string}`;
  }

  /**
   * Pages through the Voided Purchases API from the stored cursor and revokes what it lists. The cursor
   * (per package) moves only past what was applied, so an interrupted run resumes where it stopped.
   */
  async syncVoidedPurchases(now: Date): Promise<number> {
    let revoked = 0;
    for (const packageName of this.adapter.packageNames) {
      const key = `google:voided:${packageName}`;
      const conn = this.orm.em.getConnection();
      const [cursor] = (await conn.execute('select value from store_cursor where key = ?', [key])) as Row[];
      // Google accepts a start at most 30 days back, and filters on when it recorded a void, which can be later
      // than the void time it reports: start from the last run minus a day of overlap (revoking is idempotent).
      const oldest = now.getTime() - 30 * DAY_MS + 60 * 60_000;
      const since = Math.max(oldest, cursor ? Number(cursor.value) - DAY_MS : oldest);
      for await (const page of this.adapter.voidedPurchases(packageName, since)) {
        for (const v of page) {
          if (!v.purchaseToken) continue;
          const at = v.voidedTimeMillis ? new Date(Number(v.voidedTimeMillis)) : now;
          const outcome = await this.revoke(v.purchaseToken, v.orderId ?? null, at, 'VOIDED');
          if (outcome.startsWith('revoked')) revoked++;
        }
      }
      // Only after a complete pass: an interrupted run starts again from the previous position.
      await conn.execute(
        `insert into store_cursor (key, value, updated_at) values (?, ?, now())
         on conflict (key) do update set value = excluded.value, updated_at = now()`,
        [key, String(now.getTime())],
      );
    }
    return revoked;
  }

  /** Revokes only what Google's Voided Purchases API confirms (for pushes that were not authenticated). */
  private async revokeIfListed(packageName: string, token: string, orderId: string | null, eventTime: Date): Promise<string> {
    try {
      for await (const page of this.adapter.voidedPurchases(packageName, Math.max(eventTime.getTime() - DAY_MS, this.clock().getTime() - 30 * DAY_MS + 60_000))) {
        const match = page.find((v) => v.purchaseToken === token && (!orderId || v.orderId === orderId));
        if (match) return this.revoke(token, match.orderId ?? orderId, match.voidedTimeMillis ? new Date(Number(match.voidedTimeMillis)) : eventTime, 'VOIDED');
      }
    } catch (err) {
      throw new RetryLater(`could not confirm the void with Google: ${(err as Error).message}`);
    }
    this.log.warn({ token, orderId }, 'unauthenticated void notification not confirmed by the Voided Purchases API; the hourly sync applies it if Google lists it');
    return 'ignored: void not confirmed by Google (yet)';
  }

  private async ownerOf(token: string, orderToken: string | null, previousToken: string | null): Promise<string | null> {
    const conn = this.orm.em.getConnection();
    const [stored] = (await conn.execute(
      `select c.app_user_id from purchase p join customer c on c.id = p.customer_id where p.store = 'PLAY_STORE' and p.purchase_token = ? limit 1`,
      [token],
    )) as Row[];
    if (stored) return stored.app_user_id as string;
    const submitter = await this.pending.ownerOfToken(token);
    if (submitter) return submitter;
    if (previousToken) {
      // An upgrade, downgrade or resubscribe belongs to whoever owns the subscription it replaces.
      const em = this.orm.em.fork();
      const lineage = await lineageOfToken(em, 'PLAY_STORE', previousToken);
      const owner = lineage ? await ownerOfLineage(em, 'PLAY_STORE', lineage) : null;
      if (owner) return owner;
    }
    return orderToken ? ownerOfOrderToken(this.orm.em.fork(), orderToken) : null;
  }

  private async storedProductOf(token: string): Promise<string | null> {
    const [row] = (await this.orm.em.getConnection().execute(`select product_id from purchase where store = 'PLAY_STORE' and purchase_token = ? order by purchased_at desc limit 1`, [
      token,
    ])) as Row[];
    return (row?.product_id as string | undefined) ?? null;
  }

  /** The token's product, or Google's final refusal of the token (unknown to Google, or refused as invalid). */
  private async lookUpSubscriptionProduct(packageName: string, token: string): Promise<string | GoogleReading> {
    const found = await this.adapter.subscriptionProductId(packageName, token);
    if ('productId' in found) return found.productId;
    if (found.kind === 'UNAVAILABLE' || found.kind === 'AUTH') throw new RetryLater(found.message);
    return { status: 'REJECTED', reason: 'INVALID_PURCHASE_TOKEN', message: `Google refused the subscription token: ${found.message}` };
  }
}

