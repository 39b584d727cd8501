// Apple's legacy verifyReceipt endpoint (deprecated by Apple, still what older apps send): production first,
// sandbox on 21007, and the status codes sorted into "the proof's fault" and "try again later". A receipt that
// cannot be one is refused here, before Apple is asked.
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

const MALFORMED = 21002;
const isTemporary = (status: number): boolean => status === 21005 || status === 21009 || (status >= 21100 && status <= 21199);

/** PKCS#7 signedData (1.2.840.113549.1.7.2): every app receipt is this container, so its DER opens with the OID. */
const PKCS7_SIGNED_DATA_OID = Buffer.from([0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const JWS = /^eyJ[\w-]*\.[\w-]*\.[\w-]*$/;

/**
 * Why this cannot be a legacy app receipt, or null when it looks like one: base64 (standard alphabet, padding
 * optional, whitespace ignored as apps wrap it) of a DER SEQUENCE holding PKCS#7 signed data. Checked locally, so
 * garbage costs no Apple call and is not kept as if Apple could still accept it.
 */
export function receiptShapeProblem(receipt: string): string | null {
  const compact = receipt.replace(/\s+/g, '');
  if (compact === '') return 'the app receipt is empty';
  if (JWS.test(compact)) return 'this is a StoreKit 2 signed transaction, not an app receipt: send it as apple.signedTransaction';
  const padded = compact.endsWith('=');
  if (!BASE64.test(compact) || (padded ? compact.length % 4 !== 0 : compact.length % 4 === 1)) {
    return 'the app receipt is not base64 (standard alphabet): send the bytes of Bundle.main.appStoreReceiptURL base64-encoded';
  }
  const size = Math.floor((compact.replace(/=+$/, '').length * 3) / 4);
  const head = Buffer.from(compact.slice(0, 32), 'base64'); // the first 24 bytes: tag, length and content type
  const notPkcs7 = 'the app receipt is base64 but not a PKCS#7 container, so it is not an App Store receipt';
  if (head[0] !== 0x30 || head.length < 2) return notPkcs7;
  // DER length: short form, long form of 1-4 bytes, or (BER, as Apple writes receipts) indefinite.
  const first = head[1]!;
  let headerLength = 2;
  let contentLength: number | null = null;
  if (first < 0x80) contentLength = first;
  else if (first > 0x80 && first <= 0x84) {
    headerLength += first & 0x7f;
    if (head.length < headerLength) return notPkcs7;
    contentLength = head.subarray(2, headerLength).reduce((n, b) => n * 256 + b, 0);
  } else if (first !== 0x80) return notPkcs7;
  if (contentLength !== null && headerLength + contentLength > size) {
    return `the app receipt is cut short: its container says ${headerLength + contentLength} bytes, the data has ${size}`;
  }
  if (!head.subarray(headerLength, headerLength + PKCS7_SIGNED_DATA_OID.length).equals(PKCS7_SIGNED_DATA_OID)) return notPkcs7;
  return null;
}

export class VerifyReceiptClient {
  constructor(private readonly config: Pick<AppleConfig, 'environment' | 'acceptSandbox' | 'sharedSecret' | 'verifyReceiptUrl' | 'verifyReceiptSandboxUrl' | 'requestTimeoutMs'>) {}

  async verify(receiptData: string): Promise<VerifyReceiptOutcome> {
    const shape = receiptShapeProblem(receiptData);
    if (shape) return { status: 'REJECTED', reason: 'INVALID_RECEIPT', message: shape };
    // A sandbox deployment asks the sandbox directly; production asks production and follows 21007 to sandbox.
    let environment: AppleEnvironment = this.config.environment;
    let answer = await this.post(environment, receiptData);
    // Production recognised the receipt (21007: a sandbox one), so a 21002 from the sandbox is the sandbox's trouble.
    let recognised = false;
    if (environment === 'PRODUCTION' && answer.status === 'ANSWER' && answer.body.status === 21007) {
      if (!this.config.acceptSandbox) return wrongEnvironmentSandbox;
      recognised = true;
      environment = 'SANDBOX';
      answer = await this.post(environment, receiptData);
    } else if (environment === 'PRODUCTION' && answer.status === 'ANSWER' && answer.body.status === MALFORMED) {
      // Apple also answers 21002 in its own bad moments; the sandbox tells which. It names a production receipt
      // it can read 21008 (then production's 21002 was temporary) and answers 21002 itself to real garbage. Asked
      // even when sandbox purchases are not accepted: asking accepts nothing.
      const sandbox = await this.post('SANDBOX', receiptData);
      if (sandbox.status === 'ANSWER' && sandbox.body.status === 21008) {
        return { status: 'PENDING', reason: 'STORE_UNAVAILABLE', message: 'verifyReceipt answered 21002 for a receipt the sandbox recognises as a production one: a temporary error; the receipt is kept and verified later' };
      }
      if (sandbox.status === 'ANSWER' && sandbox.body.status === 0 && !this.config.acceptSandbox) return wrongEnvironmentSandbox;
      environment = 'SANDBOX';
      answer = sandbox;
    }
    if (answer.status === 'UNREACHABLE') return { status: 'PENDING', reason: 'STORE_UNAVAILABLE', message: answer.message };
    const code = Number(answer.body.status);
    if (code === 0) return { status: 'OK', environment, body: answer.body };
    if (code === MALFORMED) {
      if (recognised) return { status: 'PENDING', reason: 'STORE_UNAVAILABLE', message: 'the sandbox answered 21002 for a receipt production recognised as a sandbox one: a temporary error; the receipt is kept and verified later' };
      return { status: 'REJECTED', reason: 'INVALID_RECEIPT', message: 'Apple says the receipt data is malformed (21002)' };
    }
    // Our shared secret is wrong: not the receipt's fault, so it is kept until the setting is fixed.
    if (code === 21004) return { status: 'PENDING', reason: 'STORE_AUTH_FAILED', message: 'Apple refused the shared secret (21004): check APPLE_SHARED_SECRET; the receipt is kept and verified later' };
    if (code === 21008) return { status: 'REJECTED', reason: 'WRONG_ENVIRONMENT', message: 'a production receipt, and this server serves the sandbox (21008)' };
    const rejection = REJECTIONS[code];
    if (rejection) return { status: 'REJECTED', reason: rejection[0], message: rejection[1] };
    // 21005, 21009, 21100-21199 are Apple's own trouble; anything unknown is kept too, not thrown away.
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

const wrongEnvironmentSandbox: VerifyReceiptOutcome = {
  status: 'REJECTED',
  reason: 'WRONG_ENVIRONMENT',
  message: 'a sandbox receipt, and this server does not accept sandbox purchases (APPLE_ACCEPT_SANDBOX)',
};
