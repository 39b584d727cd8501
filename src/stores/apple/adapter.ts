// Apple App Store adapter: StoreKit 2 signed transactions (verified locally, current subscription state from
// the App Store Server API when a key is configured) and legacy app receipts (verifyReceipt).
import type { JWSTransactionDecodedPayload, StatusResponse } from '@apple/app-store-server-library';
import type { Logger } from 'pino';
import type { AppleConfig, AppleEnvironment } from '../../config/config.js';
import type { Catalog } from '../../domain/catalog.js';
import type { NormalizedPurchase } from '../../domain/types.js';
import type { AppleProof, PurchaseProof, StoreAdapter, SubscriptionRef, VerificationResult } from '../adapter.js';
import { AppStoreServerApi, type ApiFailure } from './api-client.js';
import { fromReceipt, fromSignedTransaction, type ReceiptEntry } from './normalize.js';
import { AppleSignedData } from './signed-data.js';
import { receiptShapeProblem, VerifyReceiptClient } from './verify-receipt.js';

export class AppStoreAdapter implements StoreAdapter {
  readonly store = 'APP_STORE' as const;
  readonly signedData: AppleSignedData;
  /** Null when no in-app purchase key is configured. */
  readonly api: AppStoreServerApi | null;
  private readonly receipts: VerifyReceiptClient;

  constructor(
    readonly config: AppleConfig,
    private readonly catalog: Catalog,
    private readonly log: Logger,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.signedData = new AppleSignedData(config);
    this.api = config.api ? new AppStoreServerApi({ ...config, api: config.api }) : null;
    this.receipts = new VerifyReceiptClient(config);
  }

  async verify(proof: PurchaseProof): Promise<VerificationResult> {
    if (proof.store !== 'APP_STORE') throw new Error('AppStoreAdapter verifies APP_STORE proofs only');
    if (proof.signedTransaction) return this.verifySignedTransaction(proof.signedTransaction);
    if (proof.appReceipt) return this.verifyAppReceipt(proof);
    return { status: 'REJECTED', reason: 'INVALID_RECEIPT', message: 'give apple.signedTransaction (StoreKit 2) or apple.appReceipt (legacy receipt)' };
  }

  /** A legacy receipt that is not base64 of a PKCS#7 container is garbage: refused without asking Apple. */
  shapeProblem(proof: PurchaseProof): { reason: 'INVALID_RECEIPT'; message: string } | null {
    if (proof.store !== 'APP_STORE' || proof.signedTransaction || !proof.appReceipt) return null;
    const problem = receiptShapeProblem(proof.appReceipt);
    return problem ? { reason: 'INVALID_RECEIPT', message: problem } : null;
  }

  private async verifySignedTransaction(jws: string): Promise<VerificationResult> {
    const verified = await this.signedData.transaction(jws);
    if (!verified.ok) return { status: verified.retryable ? 'PENDING' : 'REJECTED', reason: verified.reason, message: verified.message };
    const tx = verified.value;
    // A product missing from the catalog is still handed on: Apple says it was paid, so it is kept (granting
    // nothing) until the catalog lists it.
    const product = this.catalog.find('APP_STORE', String(tx.productId));
    const now = this.clock();
    const submitted = fromSignedTransaction(tx, { environment: verified.environment, now });
    if (product?.kind !== 'AUTO_RENEWABLE' || !this.api) return { status: 'VERIFIED', purchases: [submitted] };

    // The app's copy speaks of the moment it was bought; Apple's status says where the subscription is now.
    const current = await this.currentSubscriptionState(verified.environment, tx);
    if (current.ok) return { status: 'VERIFIED', purchases: dedupe([submitted, ...current.purchases]) };
    if (current.kind === 'NOT_FOUND' || current.kind === 'INVALID') {
      this.log.warn({ store: 'APP_STORE', transactionId: tx.transactionId, error: current.message }, 'subscription status not available; recorded from the signed transaction');
      return { status: 'VERIFIED', purchases: [submitted] };
    }
    return {
      status: 'VERIFIED',
      purchases: [submitted],
      recheckLater: {
        reason: current.kind === 'AUTH' ? 'STORE_AUTH_FAILED' : 'STORE_UNAVAILABLE',
        message: `recorded from the signed transaction; its current status is fetched again later (${current.message})`,
      },
    };
  }

  /**
   * Restore: every transaction of the Apple account behind the proof. A legacy receipt lists them itself; a signed
   * transaction leads, with an API key, to Get Transaction History, and every subscription's latest state to Get
   * All Subscription Statuses. Without a key only the submitted transaction can be restored.
   */
  async restore(proof: PurchaseProof): Promise<VerificationResult> {
    if (proof.store !== 'APP_STORE') throw new Error('AppStoreAdapter restores APP_STORE proofs only');
    if (proof.appReceipt) return this.verifyAppReceipt({ ...proof, transactionId: null });
    if (!proof.signedTransaction || !this.api) return this.verify(proof);
    const verified = await this.signedData.transaction(proof.signedTransaction);
    if (!verified.ok) return { status: verified.retryable ? 'PENDING' : 'REJECTED', reason: verified.reason, message: verified.message };
    const env = verified.environment;
    const now = this.clock();
    const history = await this.api.transactionHistory(env, String(verified.value.transactionId));
    if (!history.ok) {
      if (history.kind === 'AUTH') this.logAuthFailure(history);
      const single = await this.verify(proof);
      if (single.status !== 'VERIFIED' || history.kind === 'NOT_FOUND' || history.kind === 'INVALID') return single;
      return { ...single, recheckLater: { reason: history.kind === 'AUTH' ? 'STORE_AUTH_FAILED' : 'STORE_UNAVAILABLE', message: `restored the submitted transaction only (${history.message})` } };
    }
    const purchases: NormalizedPurchase[] = [fromSignedTransaction(verified.value, { environment: env, now })];
    for (const jws of history.value) {
      const tx = await this.signedData.transaction(jws);
      if (tx.ok) purchases.push(fromSignedTransaction(tx.value, { environment: tx.environment, now }));
      else this.log.warn({ store: 'APP_STORE', reason: tx.reason }, 'a transaction of the history did not verify; skipped');
    }
    // The subscriptions' current state: the history has their transactions, the statuses their renewal info.
    const statuses = await this.api.subscriptionStatuses(env, String(verified.value.transactionId));
    if (statuses.ok) {
      const lineages = new Set(purchases.filter((p) => p.expiresAt !== null).map((p) => p.lineageId));
      for (const lineageId of lineages) {
        const current = await this.fromStatuses(env, statuses.value, lineageId);
        if (current.ok) purchases.push(...current.purchases);
      }
    }
    return { status: 'VERIFIED', purchases: dedupe(purchases) };
  }

  /**
   * Scheduled re-check: the subscription's latest transaction and renewal info from Get All Subscription Statuses;
   * without an API key, the latest legacy receipt that listed it, verified again (Apple adds renewals to it).
   */
  async recheck(ref: SubscriptionRef): Promise<VerificationResult> {
    if (this.api) {
      const res = await this.api.subscriptionStatuses(ref.environment, ref.lineageId);
      const current = res.ok ? await this.fromStatuses(ref.environment, res.value, ref.lineageId) : res;
      if (current.ok) return { status: 'VERIFIED', purchases: current.purchases };
      if (current.kind === 'AUTH') this.logAuthFailure(current);
      const reason = current.kind === 'AUTH' ? 'STORE_AUTH_FAILED' : current.kind === 'UNAVAILABLE' ? 'STORE_UNAVAILABLE' : 'INVALID_RECEIPT';
      return { status: current.kind === 'AUTH' || current.kind === 'UNAVAILABLE' ? 'PENDING' : 'REJECTED', reason, message: current.message };
    }
    if (ref.appReceipt) {
      const answer = await this.verifyAppReceipt({ store: 'APP_STORE', appReceipt: ref.appReceipt, signedTransaction: null, transactionId: null });
      if (answer.status !== 'VERIFIED') return answer;
      // The receipt lists the whole Apple account: only this subscription is re-checked here.
      const purchases = answer.purchases.filter((p) => p.lineageId === ref.lineageId);
      if (purchases.length === 0) return { status: 'REJECTED', reason: 'INVALID_RECEIPT', message: `the stored receipt no longer lists subscription ${ref.lineageId}` };
      return { ...answer, purchases };
    }
    return { status: 'REJECTED', reason: 'STORE_AUTH_FAILED', message: 'no App Store Server API key is configured and no receipt is stored for this subscription' };
  }

  /** Without an API key, subscriptions are re-checked with their stored legacy receipt. */
  get recheckNeedsReceipt(): boolean {
    return !this.api;
  }

  /** The latest transaction and renewal info of the transaction's subscription, from the App Store Server API. */
  async currentSubscriptionState(env: AppleEnvironment, tx: JWSTransactionDecodedPayload): Promise<{ ok: true; purchases: NormalizedPurchase[] } | ApiFailure> {
    const res = await this.api!.subscriptionStatuses(env, String(tx.transactionId));
    if (!res.ok) {
      if (res.kind === 'AUTH') this.logAuthFailure(res);
      return res;
    }
    return this.fromStatuses(env, res.value, String(tx.originalTransactionId ?? tx.transactionId));
  }

  private async fromStatuses(env: AppleEnvironment, response: StatusResponse, originalTransactionId: string): Promise<{ ok: true; purchases: NormalizedPurchase[] } | ApiFailure> {
    const items = (response.data ?? []).flatMap((group) => group.lastTransactions ?? []);
    const item = items.find((i) => i.originalTransactionId === originalTransactionId);
    if (!item?.signedTransactionInfo) return { ok: false, kind: 'NOT_FOUND', status: 200, message: `no status for subscription ${originalTransactionId}` };
    const tx = await this.signedData.transaction(item.signedTransactionInfo);
    const renewal = item.signedRenewalInfo ? await this.signedData.renewalInfo(item.signedRenewalInfo) : null;
    if (!tx.ok || (renewal && !renewal.ok)) {
      const failure = !tx.ok ? tx : (renewal as { ok: false; message: string });
      return { ok: false, kind: 'INVALID', status: 200, message: `the API's signed data did not verify: ${failure.message}` };
    }
    const renewalInfo = renewal?.ok ? renewal.value : null;
    return { ok: true, purchases: [fromSignedTransaction(tx.value, { environment: env, renewalInfo, status: item.status ?? null, now: this.clock() })] };
  }

  private async verifyAppReceipt(proof: AppleProof): Promise<VerificationResult> {
    const answer = await this.receipts.verify(proof.appReceipt!);
    if (answer.status !== 'OK') {
      if (answer.reason === 'STORE_AUTH_FAILED') this.log.error({ store: 'APP_STORE' }, answer.message);
      return answer;
    }
    const { body, environment } = answer;
    const bundleId = body.receipt?.bundle_id;
    if (bundleId !== this.config.bundleId) {
      return { status: 'REJECTED', reason: 'WRONG_APP', message: `the receipt is for bundle id ${bundleId ?? '(none)'}, not ${this.config.bundleId}` };
    }
    const entries: ReceiptEntry[] = [...(body.receipt?.in_app ?? []), ...(body.latest_receipt_info ?? [])];
    const observedAt = body.receipt?.request_date_ms ? new Date(Number(body.receipt.request_date_ms)) : this.clock();
    const purchases = fromReceipt(entries, body.pending_renewal_info ?? [], environment, observedAt);
    if (proof.transactionId) {
      // Found by id, never by position: Apple promises no order, and a receipt holds every purchase of the account.
      const claimed = purchases.get(proof.transactionId);
      if (!claimed) return { status: 'REJECTED', reason: 'INVALID_RECEIPT', message: `the receipt does not contain transaction ${proof.transactionId}` };
    }
    if (purchases.size === 0) return { status: 'REJECTED', reason: 'INVALID_RECEIPT', message: 'the receipt holds no in-app purchases' };
    return { status: 'VERIFIED', purchases: [...purchases.values()] };
  }

  private logAuthFailure(failure: ApiFailure): void {
    this.log.error(
      { store: 'APP_STORE', status: failure.status, error: failure.message },
      'the App Store Server API refused our in-app purchase key: check APPLE_KEY_ID, APPLE_ISSUER_ID, APPLE_PRIVATE_KEY_FILE and APPLE_BUNDLE_ID',
    );
  }
}

/** One statement per transaction: when the API's latest transaction is the submitted one, its richer copy wins. */
function dedupe(purchases: NormalizedPurchase[]): NormalizedPurchase[] {
  const byId = new Map<string, NormalizedPurchase>();
  for (const p of purchases) byId.set(p.transactionId, p);
  return [...byId.values()];
}
