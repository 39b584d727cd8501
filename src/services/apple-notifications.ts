// App Store Server Notifications V2. A notification is verified first (a bad signature changes nothing),
// stored once by notificationUUID, then its signed transaction and renewal info are applied through the same
// recorder as submitReceipt. Unlike Google's, Apple's notifications carry the signed state itself: no API call.
import type { ResponseBodyV2DecodedPayload } from '@apple/app-store-server-library';
import type { Logger } from 'pino';
import type { AppleEnvironment } from '../config/config.js';
import type { Orm } from '../persistence/orm.js';
import { ownerOfLineage, ownerOfOrderToken } from '../persistence/repository.js';
import type { AppStoreAdapter } from '../stores/apple/adapter.js';
import { FAMILY_SHARING_REVOKED, fromSignedTransaction } from '../stores/apple/normalize.js';
import { DEFAULT_JOB_TIMING, type JobTiming } from '../domain/job-timing.js';
import { NotificationInbox, unstorableReason } from './notification-inbox.js';
import type { PurchaseRecorder } from './purchase-recorder.js';

/** Types whose signed transaction (and renewal info) is applied. Anything else is recorded and left alone. */
export const APPLIED_NOTIFICATION_TYPES = new Set([
  'SUBSCRIBED',
  'DID_RENEW',
  'DID_FAIL_TO_RENEW',
  'GRACE_PERIOD_EXPIRED',
  'DID_CHANGE_RENEWAL_STATUS',
  'DID_CHANGE_RENEWAL_PREF',
  'EXPIRED',
  'REFUND',
  'REFUND_REVERSED',
  'REVOKE',
  'RENEWAL_EXTENDED',
  'ONE_TIME_CHARGE',
  'OFFER_REDEEMED',
  'PRICE_INCREASE',
]);
/**
 * The HTTP body of one notification, for the /notifications/apple route: `{"signedPayload": ...}`, a JWS whose
 * header carries an x5c chain (about 5 KB) and whose payload nests a signed transaction and a signed renewal info,
 * each with its own chain. Real ones are 15 to 30 KB; 256 KiB leaves room for what Apple may add.
 */
export const MAX_APPLE_NOTIFICATION_BYTES = 256 * 1024;

/** Three base64url parts: anything else is not a signed payload (and cannot hide a NUL from storage). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** The transaction these carry may be an older one: the subscription's renewal info does not describe it. */
const ABOUT_ONE_TRANSACTION = new Set(['REFUND', 'REFUND_REVERSED', 'REFUND_DECLINED', 'CONSUMPTION_REQUEST']);

interface StoredAppleNotification {
  signedPayload: string;
  notificationType: string | null;
  subtype: string | null;
  environment: AppleEnvironment;
}

export type AppleIntakeResult =
  | { status: 200; duplicate: boolean; outcome: string }
  /** 401: the signature or app/environment did not verify; 503: Apple's revocation check was unreachable. */
  | { status: 400 | 401 | 503; error: string };

export class AppleNotifications {
  private readonly inbox: NotificationInbox<StoredAppleNotification>;

  constructor(
    private readonly orm: Orm,
    private readonly adapter: AppStoreAdapter,
    private readonly recorder: PurchaseRecorder,
    private readonly clock: () => Date,
    private readonly log: Logger,
    timing: JobTiming = DEFAULT_JOB_TIMING,
  ) {
    this.inbox = new NotificationInbox(orm, 'APP_STORE', clock, timing);
  }

  /** Takes the POST body Apple sends. Throws only when the notification could not be stored (so Apple retries). */
  async intake(body: unknown): Promise<AppleIntakeResult> {
    const signedPayload = (body as { signedPayload?: unknown } | null)?.signedPayload;
    if (typeof signedPayload !== 'string' || signedPayload.length === 0) return { status: 400, error: 'expected {"signedPayload": "<JWS>"}' };
    if (signedPayload.length > MAX_APPLE_NOTIFICATION_BYTES) return { status: 400, error: `signedPayload is longer than ${MAX_APPLE_NOTIFICATION_BYTES} characters` };
    if (!COMPACT_JWS.test(signedPayload)) return { status: 400, error: 'signedPayload is not a compact JWS (three base64url parts)' };
    const verified = await this.adapter.signedData.notification(signedPayload);
    if (!verified.ok) return { status: verified.retryable ? 503 : 401, error: `${verified.reason}: ${verified.message}` };
    const n = verified.value;
    if (typeof n.notificationUUID !== 'string' || n.notificationUUID.length === 0) return { status: 400, error: 'the notification has no notificationUUID' };
    if (n.notificationUUID.length > 255) return { status: 400, error: 'the notificationUUID is longer than 255 characters' };
    // Signed, but PostgreSQL still could not store it: refused, or the insert fails and Apple sends it again.
    const problem = unstorableReason(n);
    if (problem) return { status: 400, error: `the notification ${problem}` };
    const stored: StoredAppleNotification = {
      signedPayload,
      notificationType: n.notificationType ? String(n.notificationType) : null,
      subtype: n.subtype ? String(n.subtype) : null,
      environment: verified.environment,
    };
    const type = [stored.notificationType ?? 'UNKNOWN', stored.subtype].filter(Boolean).join('.');
    const id = await this.inbox.receive(n.notificationUUID, type, stored, true);
    if (id === null) return { status: 200, duplicate: true, outcome: 'already received' };
    return { status: 200, duplicate: false, outcome: await this.processOne(id, n, verified.environment, 1) };
  }

  /** Processes stored notifications whose earlier processing did not finish. */
  async processDue(now: Date, limit = 50): Promise<number> {
    const due = await this.inbox.claimDue(now, limit);
    for (const row of due) {
      const verified = await this.adapter.signedData.notification(row.payload.signedPayload);
      if (!verified.ok) {
        if (verified.retryable) await this.failedAttempt(row.id, row.attempts, verified.message);
        else await this.inbox.done(row.id, `ignored: ${verified.reason}`);
        continue;
      }
      await this.processOne(row.id, verified.value, verified.environment, row.attempts);
    }
    return due.length;
  }

  private async processOne(id: number, n: ResponseBodyV2DecodedPayload, environment: AppleEnvironment, attempts: number): Promise<string> {
    try {
      const outcome = await this.apply(n, environment);
      await this.inbox.done(id, outcome);
      return outcome;
    } catch (err) {
      this.log.error({ err, notification: id }, 'processing an App Store notification failed; it will be retried');
      return this.failedAttempt(id, attempts, (err as Error).message);
    }
  }

  /** Another attempt later, or, once the attempts are used up, parked as FAILED. Returns the outcome to report. */
  private async failedAttempt(id: number, attempts: number, error: string): Promise<string> {
    if ((await this.inbox.retryLater(id, attempts, error)) === 'RETRY_LATER') return 'kept for retry';
    this.log.error({ notification: id, attempts, error }, 'an App Store notification kept failing: parked as FAILED, not retried');
    return `failed after ${attempts} attempts`;
  }

  private async apply(n: ResponseBodyV2DecodedPayload, environment: AppleEnvironment): Promise<string> {
    const type = String(n.notificationType);
    if (type === 'TEST') return 'ignored: test notification';
    if (type === 'CONSUMPTION_REQUEST') return 'recorded: consumption request (answer it with Send Consumption Information)';
    if (!APPLIED_NOTIFICATION_TYPES.has(type)) return `ignored: ${type} is not a notification type this server applies`;
    const signedTransaction = n.data?.signedTransactionInfo;
    if (!signedTransaction) return 'ignored: no transaction in the notification';
    const tx = await this.adapter.signedData.transaction(signedTransaction);
    if (!tx.ok) {
      if (tx.retryable) throw new Error(`its signed transaction could not be checked yet: ${tx.message}`);
      return `ignored: its signed transaction did not verify (${tx.reason})`;
    }
    const signedRenewal = ABOUT_ONE_TRANSACTION.has(type) ? undefined : n.data?.signedRenewalInfo;
    const renewal = signedRenewal ? await this.adapter.signedData.renewalInfo(signedRenewal) : null;
    if (renewal && !renewal.ok) {
      if (renewal.retryable) throw new Error(`its signed renewal info could not be checked yet: ${renewal.message}`);
      return `ignored: its signed renewal info did not verify (${renewal.reason})`;
    }
    const purchase = fromSignedTransaction(tx.value, {
      environment,
      renewalInfo: renewal?.ok ? renewal.value : null,
      status: n.data?.status ?? null,
      revocationReason: type === 'REVOKE' ? FAMILY_SHARING_REVOKED : undefined,
      now: this.clock(),
    });
    const owner = await this.ownerOf(purchase.lineageId, purchase.orderToken);
    if (!owner) {
      await this.recorder.keepUnowned([purchase]);
      return 'kept unowned until a customer submits it';
    }
    const outcome = await this.recorder.record(owner, [purchase], this.clock(), { fromNotification: true });
    return outcome.foreignTransactionIds.length > 0 ? 'belongs to another customer' : `applied to ${owner}`;
  }

  /** Whoever owns the subscription already, else the customer the appAccountToken names. */
  private async ownerOf(lineageId: string, orderToken: string | null): Promise<string | null> {
    const em = this.orm.em.fork();
    return (await ownerOfLineage(em, 'APP_STORE', lineageId)) ?? (orderToken ? await ownerOfOrderToken(em, orderToken) : null);
  }
}
