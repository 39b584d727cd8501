// Apple's legacy verifyReceipt endpoint (deprecated by Apple, still what older apps send): production first,
// sandbox on 21007, and the status codes sorted into "the proof's fault" and "try again later".
import type { AppleConfig, AppleEnvironment } from '../../config/config.js';
import type { ReceiptReason } from '../../domain/errors.js';
import type { PendingRenewalInfo, ReceiptEntry } from './normalize.js';

export interface VerifyReceiptBody {
  status: number;
  environment?: string;
  receipt?: { bundle_id?: string; request_date_ms?: string; in_app?: ReceiptEntry[]; [field: string]: unknown };
  latest_receipt_info?: ReceiptEntry[];
  pending_renewal_info?: PendingRenewalInfo[];
  [field: string]: unknown;
}

export type VerifyReceiptOutcome =
  | { status: 'OK'; environment: AppleEnvironment; body: VerifyReceiptBody }
  | { status: 'PENDING' | 'REJECTED'; reason: ReceiptReason; message: string };

/** What each non-zero status means (design.md, Apple's verifyReceipt documentation). */
const REJECTIONS: Record<number, [ReceiptReason, string]> = {
  21003: ['INVALID_RECEIPT', 'Apple says the receipt is not authentic (21003)'],
  21010: ['INVALID_RECEIPT', 'Apple could not find the account of this receipt (21010)'],
};

const isTemporary = (status: number): boolean => status === 21002 || status === 21005 || status === 21009 || (status >= 21100 && status <= 21199);

export class VerifyReceiptClient {
  constructor(private readonly config: Pick<AppleConfig, 'environment' | 'acceptSandbox' | 'sharedSecret' | 'verifyReceiptUrl' | 'verifyReceiptSandboxUrl' | 'requestTimeoutMs'>) {}

  async verify(receiptData: string): Promise<VerifyReceiptOutcome> {
    // A sandbox deployment asks the sandbox directly; production asks production and follows 21007 to sandbox.
    let environment: AppleEnvironment = this.config.environment;
    let answer = await this.post(environment, receiptData);
    if (answer.status === 'ANSWER' && answer.body.status === 21007) {
      if (!this.config.acceptSandbox) {
        return { status: 'REJECTED', reason: 'WRONG_ENVIRONMENT', message: 'a sandbox receipt, and this server does not accept sandbox purchases (APPLE_ACCEPT_SANDBOX)' };
      }
      environment = 'SANDBOX';
      answer = await this.post(environment, receiptData);
    }
    if (answer.status === 'UNREACHABLE') return { status: 'PENDING', reason: 'STORE_UNAVAILABLE', message: answer.message };
    const code = Number(answer.body.status);
    if (code === 0) return { status: 'OK', environment, body: answer.body };
    // Our shared secret is wrong: not the receipt's fault, so it is kept until the setting is fixed.
    if (code === 21004) return { status: 'PENDING', reason: 'STORE_AUTH_FAILED', message: 'Apple refused the shared secret (21004): check APPLE_SHARED_SECRET; the receipt is kept and verified later' };
    if (code === 21008) return { status: 'REJECTED', reason: 'WRONG_ENVIRONMENT', message: 'a production receipt, and this server serves the sandbox (21008)' };
    const rejection = REJECTIONS[code];
    if (rejection) return { status: 'REJECTED', reason: rejection[0], message: rejection[1] };
    // 21002, 21005, 21009, 21100-21199 are Apple's own trouble; anything unknown is kept too, not thrown away.
    const known = isTemporary(code) ? 'a temporary error' : 'an unknown status';
    return { status: 'PENDING', reason: 'STORE_UNAVAILABLE', message: `verifyReceipt answered ${known} (${code}); the receipt is kept and verified later` };
  }

  private async post(environment: AppleEnvironment, receiptData: string): Promise<{ status: 'ANSWER'; body: VerifyReceiptBody } | { status: 'UNREACHABLE'; message: string }> {
    const url = environment === 'SANDBOX' ? this.config.verifyReceiptSandboxUrl : this.config.verifyReceiptUrl;
    const payload: Record<string, unknown> = { 'receipt-data': receiptData, 'exclude-old-transactions': false };
    if (this.config.sharedSecret) payload.password = this.config.sharedSecret;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.config.requestTimeoutMs),
      });
      if (!res.ok) return { status: 'UNREACHABLE', message: `verifyReceipt answered HTTP ${res.status}; the receipt is kept and verified later` };
      const body = (await res.json()) as VerifyReceiptBody;
      if (typeof body?.status !== 'number') return { status: 'UNREACHABLE', message: 'verifyReceipt answered without a status; the receipt is kept and verified later' };
      return { status: 'ANSWER', body };
    } catch (err) {
      return { status: 'UNREACHABLE', message: `verifyReceipt could not be reached (${(err as Error).name}); the receipt is kept and verified later` };
    }
  }
}
