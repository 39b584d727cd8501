// Outbound webhooks, delivered from the outbox. appendEvents writes one PENDING webhook_delivery per event and
// active endpoint in the event's own transaction; this service POSTs them, signed, at least once:
// - in order per customer and endpoint: only the head of a customer's line (no earlier PENDING delivery for the
//   same endpoint and customer) may be claimed, so a later event never overtakes an earlier one that is failing;
// - claimed with a lease (FOR UPDATE SKIP LOCKED, next_attempt_at moved past the request timeout), so any number
//   of instances run the job without sending one delivery twice at once, and a crashed instance's claims are
//   taken over when the lease ends;
// - retried with exponential backoff and jitter (30 s doubling, at most 2 h per wait) until 48 h after the
//   delivery was created; then FAILED, and the customer's next deliveries proceed.
// The body is built from the immutable event row, so every retry sends the same id and the same bytes.
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { WebhookConfig } from '../config/config.js';
import { AppError } from '../domain/errors.js';
import { DEFAULT_JOB_TIMING, type JobTiming } from '../domain/job-timing.js';
import { WEBHOOK_DELIVERY_STATUSES } from '../persistence/entities.js';
import type { Orm } from '../persistence/orm.js';
import { toDate } from '../persistence/snapshot-codec.js';
import { eventViewOf, publicEventId } from './event-view.js';

type Row = Record<string, unknown>;

export { WEBHOOK_DELIVERY_STATUSES };
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number];
export type WebhookOutcome = 'delivered' | 'retried' | 'failed';

/** Deliveries are retried until this long after they were created, then FAILED. */
export const WEBHOOK_RETRY_WINDOW_MS = 48 * 3_600_000;
const FIRST_RETRY_MS = 30_000;
const MAX_WAIT_MS = 2 * 3_600_000;
/**
 * Deliveries claimed and sent at once per round (each the head of a different customer's line). A round claims
 * no more than it sends at once, so every claimed request starts right away and one timeout fits in its lease.
 */
const CONCURRENCY = 8;
const ERROR_SNIPPET = 300;

/** The wait after the n-th failed attempt: 30 s, 1 min, 2 min, … at most 2 h, each ±25% so retries spread out. */
export function webhookRetryDelayMs(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1), MAX_WAIT_MS);
  return Math.min(base * (0.75 + 0.5 * random()), MAX_WAIT_MS);
}

/** The x-iap-signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export function signWebhook(secret: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex');
  return `t=${timestampSeconds},v1=${mac}`;
}

/** A URL as logs and the delivery log show it: a password in it is replaced. */
const shownUrl = (url: string): string => url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');


export interface WebhookMetrics {
  webhookDelivery(outcome: WebhookOutcome): void;
}

export interface WebhookDeliveryRecord {
  id: string;
  eventId: string;
  eventType: string;
  appUserId: string | null;
  url: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  lastAttemptAt: Date | null;
  /** Only while PENDING: when the next attempt is due (or the current attempt's lease ends). */
  nextAttemptAt: Date | null;
  responseStatus: number | null;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
}

export interface WebhookDeliveryFilter {
  status?: WebhookDeliveryStatus | null;
  appUserId?: string | null;
  /** The public event id, `evt_<n>`. */
  eventId?: string | null;
  limit: number;
  /** A delivery id: only deliveries older than it (the next page). */
  before?: string | null;
}

export interface DeliveryRunResult {
  delivered: number;
  retried: number;
  failed: number;
}

interface Claimed {
  id: string;
  attempts: number;
  createdAt: Date;
  url: string;
  eventId: string;
  body: string;
}

type AttemptResult = { ok: true; status: number } | { ok: false; status: number | null; error: string };

export class WebhookService {
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(
    private readonly orm: Orm,
    private readonly config: WebhookConfig | null,
    private readonly clock: () => Date,
    private readonly log: Logger,
    private readonly metrics?: WebhookMetrics,
    private readonly timing: JobTiming = DEFAULT_JOB_TIMING,
  ) {}

  /** Whether this instance delivers (WEBHOOK_URLS and WEBHOOK_SECRET are configured). */
  get enabled(): boolean {
    return this.config !== null;
  }

  /**
   * Delivers what is due, in the background, soon: called right after a commit that may have appended events,
   * so webhooks normally leave within milliseconds. Calls while a run is going coalesce into one more run.
   */
  runSoon(): void {
    if (!this.config || this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        const limit = 500;
        const r = await this.deliverDue(this.clock(), limit);
        if (r.delivered + r.retried + r.failed >= limit) this.again = true;
      } while (this.again && !this.closed);
    };
    this.running = run()
      .catch((err: unknown) => this.log.error({ err }, 'delivering webhooks failed; the scheduler retries'))
      .finally(() => {
        this.running = null;
      });
  }

  /** Waits until background deliveries started by runSoon are done (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops starting background runs and waits for the current one. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
  }

  /**
   * The job: claims due deliveries (heads of their customer's line only), sends them, records each outcome, and
   * repeats while that frees further heads, up to `limit` attempts.
   */
  async deliverDue(now: Date, limit = 500): Promise<DeliveryRunResult> {
    const result: DeliveryRunResult = { delivered: 0, retried: 0, failed: 0 };
    const config = this.config;
    if (!config) return result;
    let attempted = 0;
    // The job's `now` moves on as the run goes (tests drive the job with a later `now`): leases and retry times are
    // counted from the moment of each claim and answer, not from the start of the run.
    const started = performance.now();
    const elapsed = () => new Date(now.getTime() + Math.round(performance.now() - started));
    while (attempted < limit) {
      const wanted = Math.min(CONCURRENCY, limit - attempted);
      const batch = await this.claim(config, elapsed(), wanted);
      if (batch.length === 0) break;
      attempted += batch.length;
      let finished = 0;
      await Promise.all(batch.map(async (d) => {
        const outcome = await this.attempt(config, d);
        const at = elapsed();
        try {
          const recorded = await this.record(d, outcome, at);
          result[recorded]++;
          if (recorded !== 'retried') finished++;
        } catch (err) {
          // Left leased: the delivery is attempted again when its lease ends.
          this.log.error({ err, delivery: d.id }, 'recording a webhook attempt failed');
        }
      }));
      // A short batch took every due head; only a finished delivery frees another (the next of its line).
      if (batch.length < wanted && finished === 0) break;
    }
    return result;
  }

  private async claim(config: WebhookConfig, now: Date, limit: number): Promise<Claimed[]> {
    // The request's timeout plus a minute to record its answer (or the job lease, if configured shorter).
    const lease = new Date(now.getTime() + config.timeoutMs + Math.min(60_000, this.timing.leaseMs));
    // The head-of-line test reads committed rows only: a delivery another instance holds stays PENDING (leased),
    // so the next of its line is not eligible until that one is DELIVERED or FAILED. Deliveries without a
    // customer have no line and go in any order.
    const rows = (await this.orm.em.getConnection().execute(
      `with claimed as (
         update webhook_delivery set attempts = attempts + 1, next_attempt_at = ?, last_attempt_at = ?
         where id in (
           select d.id from webhook_delivery d
           join webhook_endpoint w on w.id = d.endpoint_id and w.active
           where d.status = 'PENDING' and d.next_attempt_at <= ?
             and not exists (
               select 1 from webhook_delivery earlier
               where earlier.endpoint_id = d.endpoint_id and earlier.customer_id = d.customer_id
                 and earlier.status = 'PENDING' and earlier.id < d.id)
           order by d.next_attempt_at, d.id
           limit ?
           for update of d skip locked)
         returning id, endpoint_id, event_id, attempts, created_at)
       select c.id, c.attempts, c.created_at, w.url, ev.id as event_id, ev.type, ev.occurred_at, ev.recorded_at,
         ev.store, ev.environment, ev.product_id, ev.store_transaction_id, ev.lineage_id, ev.data, cu.app_user_id
       from claimed c
       join webhook_endpoint w on w.id = c.endpoint_id
       join event ev on ev.id = c.event_id
       left join customer cu on cu.id = ev.customer_id
       order by c.id`,
      [lease, now, now, limit],
    )) as Row[];
    return rows.map((r) => {
      const event = eventViewOf({ ...r, id: r.event_id });
      const payload = {
        id: event.id,
        type: event.type,
        occurredAt: event.occurredAt.toISOString(),
        recordedAt: event.recordedAt.toISOString(),
        appUserId: (r.app_user_id as string | null) ?? null,
        store: event.store,
        environment: event.environment,
        productId: event.productId,
        transactionId: event.transactionId,
        originalTransactionId: event.originalTransactionId,
        data: event.data,
      };
      return {
        id: String(r.id),
        attempts: Number(r.attempts),
        createdAt: toDate(r.created_at)!,
        url: r.url as string,
        eventId: payload.id,
        body: JSON.stringify(payload),
      };
    });
  }

  private async attempt(config: WebhookConfig, d: Claimed): Promise<AttemptResult> {
    // Wall-clock time, not the injectable clock: receivers compare it with their own clock to refuse replays.
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      // fetch refuses URLs with credentials: user:password@ in a configured URL becomes Basic authorization.
      const target = new URL(d.url);
      const authorization = target.username || target.password
        ? { authorization: `Basic ${Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString('base64')}` }
        : {};
      target.username = '';
      target.password = '';
      const res = await fetch(target, {
        method: 'POST',
        headers: {
          ...authorization,
          'content-type': 'application/json',
          'user-agent': 'iap-entitlements-webhooks/1',
          'x-iap-event-id': d.eventId,
          'x-iap-delivery-attempt': String(d.attempts),
          'x-iap-signature': signWebhook(config.secret, timestamp, d.body),
        },
        body: d.body,
        // A redirect is not an acknowledgement: it is retried, never followed with the signed body.
        redirect: 'manual',
        signal: AbortSignal.timeout(config.timeoutMs),
      });
      const snippet = await readSnippet(res);
      if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
      return { ok: false, status: res.status, error: `HTTP ${res.status}${snippet ? `: ${snippet}` : ''}` };
    } catch (err) {
      return { ok: false, status: null, error: describeFetchError(err, config.timeoutMs) };
    }
  }

  private async record(d: Claimed, outcome: AttemptResult, at: Date): Promise<WebhookOutcome> {
    const conn = this.orm.em.getConnection();
    // `attempts = ?`: if this attempt outlived its lease and another run claimed the delivery again, that run
    // records the outcome.
    if (outcome.ok) {
      await conn.execute(
        `update webhook_delivery set status = 'DELIVERED', delivered_at = ?, response_status = ?, last_error = null
         where id = ? and attempts = ? and status = 'PENDING'`,
        [at, outcome.status, d.id, d.attempts],
      );
      this.metrics?.webhookDelivery('delivered');
      return 'delivered';
    }
    const deadline = d.createdAt.getTime() + WEBHOOK_RETRY_WINDOW_MS;
    const error = outcome.error.slice(0, 1000);
    if (at.getTime() >= deadline) {
      await conn.execute(
        `update webhook_delivery set status = 'FAILED', response_status = ?, last_error = ?
         where id = ? and attempts = ? and status = 'PENDING'`,
        [outcome.status, error, d.id, d.attempts],
      );
      this.log.error({ delivery: d.id, event: d.eventId, url: shownUrl(d.url), attempts: d.attempts, err: error }, 'webhook delivery FAILED after 48 hours of retries; the next events of this customer proceed');
      this.metrics?.webhookDelivery('failed');
      return 'failed';
    }
    // The last retry falls on the deadline itself, so a receiver back within the window still gets it.
    const retryAt = new Date(Math.min(at.getTime() + webhookRetryDelayMs(d.attempts), deadline));
    await conn.execute(
      `update webhook_delivery set next_attempt_at = ?, response_status = ?, last_error = ?
       where id = ? and attempts = ? and status = 'PENDING'`,
      [retryAt, outcome.status, error, d.id, d.attempts],
    );
    this.log.warn({ delivery: d.id, event: d.eventId, url: shownUrl(d.url), attempts: d.attempts, retryAt, err: error }, 'webhook delivery failed; retrying later');
    this.metrics?.webhookDelivery('retried');
    return 'retried';
  }

  /** The delivery log, newest first. */
  async list(filter: WebhookDeliveryFilter): Promise<WebhookDeliveryRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status) {
      where.push('d.status = ?');
      params.push(filter.status);
    }
    if (filter.appUserId != null) {
      where.push('d.customer_id = (select id from customer where app_user_id = ?)');
      params.push(filter.appUserId);
    }
    if (filter.eventId != null) {
      where.push('d.event_id = ?');
      params.push(parseEventId(filter.eventId));
    }
    if (filter.before != null) {
      where.push('d.id < ?');
      params.push(parseDeliveryId(filter.before, 'before'));
    }
    if (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > 200) throw new AppError('BAD_USER_INPUT', 'limit must be 1 to 200');
    return this.select(`${where.length > 0 ? `where ${where.join(' and ')}` : ''} order by d.id desc limit ?`, [...params, filter.limit]);
  }

  /**
   * Sets a FAILED delivery back to PENDING, due now: one more attempt (its 48 hours are over, so a failure makes
   * it FAILED again). Ordering: it becomes the head of its customer's line again, ahead of later PENDING ones,
   * but arrives after later events that were already delivered. A PENDING delivery is returned as it is.
   */
  async retry(id: string, now: Date): Promise<WebhookDeliveryRecord> {
    const deliveryId = parseDeliveryId(id, 'id');
    await this.orm.em.getConnection().execute(
      `update webhook_delivery set status = 'PENDING', next_attempt_at = ? where id = ? and status = 'FAILED'`,
      [now, deliveryId],
    );
    const [record] = await this.select('where d.id = ?', [deliveryId]);
    if (!record) throw new AppError('NOT_FOUND', `no webhook delivery ${id}`);
    if (record.status === 'DELIVERED') throw new AppError('BAD_USER_INPUT', `webhook delivery ${id} was already delivered`, { status: record.status });
    this.runSoon();
    return record;
  }

  private async select(tail: string, params: unknown[]): Promise<WebhookDeliveryRecord[]> {
    const rows = (await this.orm.em.getConnection().execute(
      `select d.id, d.event_id, ev.type as event_type, cu.app_user_id, w.url, d.status, d.attempts, d.last_attempt_at,
         d.next_attempt_at, d.response_status, d.last_error, d.delivered_at, d.created_at
       from webhook_delivery d
       join webhook_endpoint w on w.id = d.endpoint_id
       join event ev on ev.id = d.event_id
       left join customer cu on cu.id = d.customer_id
       ${tail}`,
      params,
    )) as Row[];
    return rows.map((r) => ({
      id: String(r.id),
      eventId: publicEventId(String(r.event_id)),
      eventType: r.event_type as string,
      appUserId: (r.app_user_id as string | null) ?? null,
      url: shownUrl(r.url as string),
      status: r.status as WebhookDeliveryStatus,
      attempts: Number(r.attempts),
      lastAttemptAt: toDate(r.last_attempt_at),
      nextAttemptAt: r.status === 'PENDING' ? toDate(r.next_attempt_at) : null,
      responseStatus: r.response_status == null ? null : Number(r.response_status),
      lastError: (r.last_error as string | null) ?? null,
      deliveredAt: toDate(r.delivered_at),
      createdAt: toDate(r.created_at)!,
    }));
  }
}

const DIGITS = /^[1-9]\d{0,18}$/;
/** Ids are PostgreSQL bigints: 19 digits can still be past the largest one. */
const MAX_BIGINT = 9_223_372_036_854_775_807n;
const isBigintId = (digits: string): boolean => DIGITS.test(digits) && BigInt(digits) <= MAX_BIGINT;

function parseEventId(value: string): string {
  const digits = value.startsWith('evt_') ? value.slice(4) : '';
  if (!isBigintId(digits)) throw new AppError('BAD_USER_INPUT', `eventId must look like evt_123 (got "${value.slice(0, 40)}")`);
  return digits;
}

function parseDeliveryId(value: string, name: string): string {
  if (!isBigintId(value)) throw new AppError('BAD_USER_INPUT', `${name} must be a webhook delivery id (got "${value.slice(0, 40)}")`);
  return value;
}

/** The first bytes of a response body, for the log; the rest is discarded. */
async function readSnippet(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < ERROR_SNIPPET) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString('utf8', 0, Math.min(size, ERROR_SNIPPET)).replace(/\s+/g, ' ').trim();
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const cause = e?.cause;
  if (cause?.code) return `${cause.code}: ${cause.message ?? e.message}`;
  return cause?.message ?? e?.message ?? String(err);
}
