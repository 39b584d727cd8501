// Google Play adapter: verifies purchase tokens with the Play Developer API (androidpublisher v3), checks the
// optional signed purchase JSON, reads voided purchases, and acknowledges or consumes after a grant.
import type { KeyObject } from 'node:crypto';
import type { androidpublisher_v3 } from 'googleapis';
import type { Logger } from 'pino';
import type { GoogleConfig } from '../../config/config.js';
import type { Catalog } from '../../domain/catalog.js';
import type { GoogleProof, PurchaseProof, StoreAdapter, SubscriptionRef, VerificationResult } from '../adapter.js';
import { PermanentStoreTaskError } from '../adapter.js';
import { createAndroidPublisher, describeGoogleError, type GoogleFailure } from './client.js';
import { isSignedByLicenseKey, licenseKey, signedPurchaseClaims } from './license.js';
import { fromProductPurchase, fromSubscriptionPurchase, type GoogleReading, type StoreTaskSpec } from './normalize.js';

export class GooglePlayAdapter implements StoreAdapter {
  readonly store = 'PLAY_STORE' as const;
  private readonly api: androidpublisher_v3.Androidpublisher;
  private readonly licenseKeys: Map<string, KeyObject>;

  constructor(
    private readonly config: GoogleConfig,
    private readonly catalog: Catalog,
    private readonly log: Logger,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.api = createAndroidPublisher(config);
    this.licenseKeys = new Map(Object.entries(config.licenseKeys).map(([pkg, key]) => [pkg, licenseKey(key)]));
  }

  async verify(proof: PurchaseProof): Promise<VerificationResult> {
    if (proof.store !== 'PLAY_STORE') throw new Error('GooglePlayAdapter verifies PLAY_STORE proofs only');
    const packageName = this.packageNameOf(proof);
    if (!packageName) {
      return {
        status: 'REJECTED',
        reason: 'WRONG_APP',
        message: proof.packageName
          ? `package ${proof.packageName} is not configured (GOOGLE_PACKAGE_NAMES)`
          : 'several apps are configured: say which with google.packageName',
      };
    }
    if (!this.catalog.find('PLAY_STORE', proof.productId)) {
      return { status: 'REJECTED', reason: 'PRODUCT_NOT_IN_CATALOG', message: `product ${proof.productId} is not in the catalog` };
    }
    const proofProblem = this.checkClientProof(proof, packageName);
    if (proofProblem) return { status: 'REJECTED', reason: 'INVALID_SIGNATURE', message: proofProblem };
    const reading = await this.read(packageName, proof.productId, proof.purchaseToken);
    if (reading.status !== 'VERIFIED') return reading;
    return { status: 'VERIFIED', purchases: [reading.purchase], followUps: reading.followUps };
  }

  /** Scheduled re-check: the subscription's latest purchase token read again, as a submission would. */
  async recheck(ref: SubscriptionRef): Promise<VerificationResult> {
    if (!ref.purchaseToken) return { status: 'REJECTED', reason: 'INVALID_PURCHASE_TOKEN', message: 'no purchase token is stored for this subscription' };
    return this.verify({ store: 'PLAY_STORE', packageName: ref.packageName, productId: ref.productId, purchaseToken: ref.purchaseToken, originalJson: null, signature: null });
  }

  /** Reads a purchase from Google as it is now. Also used for notifications and voided purchases. */
  async read(packageName: string, productId: string, token: string, revoked?: { at: Date; reason: string }): Promise<GoogleReading> {
    const product = this.catalog.find('PLAY_STORE', productId);
    if (!product) return { status: 'REJECTED', reason: 'PRODUCT_NOT_IN_CATALOG', message: `product ${productId} is not in the catalog` };
    const ctx = { packageName, token, observedAt: this.clock(), revokedAt: revoked?.at ?? null, revocationReason: revoked?.reason ?? null };
    try {
      if (product.kind === 'AUTO_RENEWABLE') {
        const res = await this.api.purchases.subscriptionsv2.get({ packageName, token }, { timeout: this.config.requestTimeoutMs });
        return fromSubscriptionPurchase(res.data, productId, ctx);
      }
      const res = await this.api.purchases.products.get({ packageName, productId, token }, { timeout: this.config.requestTimeoutMs });
      return fromProductPurchase(res.data, productId, product.kind, ctx);
    } catch (err) {
      return this.failure(describeGoogleError(err), `reading ${productId}`);
    }
  }

  /** Finds which product a subscription token is for (notifications name it only in older versions). */
  async subscriptionProductId(packageName: string, token: string): Promise<{ productId: string } | GoogleFailure> {
    try {
      const res = await this.api.purchases.subscriptionsv2.get({ packageName, token }, { timeout: this.config.requestTimeoutMs });
      const productId = res.data.lineItems?.[0]?.productId;
      return productId ? { productId } : { kind: 'INVALID', status: 200, message: 'subscription without line items' };
    } catch (err) {
      return describeGoogleError(err);
    }
  }

  /** Sends one queued acknowledgement or consumption. Resolves when Google accepted it (or already had). */
  async perform(task: StoreTaskSpec): Promise<void> {
    const options = { timeout: this.config.requestTimeoutMs };
    const { packageName, productId, token } = task;
    try {
      if (task.kind === 'CONSUME_PRODUCT') await this.api.purchases.products.consume({ packageName, productId, token }, options);
      else if (task.kind === 'ACKNOWLEDGE_PRODUCT') await this.api.purchases.products.acknowledge({ packageName, productId, token, requestBody: {} }, options);
      else await this.api.purchases.subscriptions.acknowledge({ packageName, subscriptionId: productId, token, requestBody: {} }, options);
    } catch (err) {
      const failure = describeGoogleError(err);
      // Already acknowledged or consumed (another instance, an earlier attempt whose answer was lost): done.
      if (failure.kind === 'INVALID' && (await this.alreadyDone(task))) return;
      if (failure.kind === 'AUTH') this.logAuthFailure(failure);
      // The purchase is gone or no longer in a state Google accepts this call for (e.g. refunded): retrying
      // cannot help.
      if (failure.kind === 'NOT_FOUND' || failure.kind === 'INVALID') throw new PermanentStoreTaskError(`${task.kind} refused: ${failure.message}`);
      throw new Error(`${task.kind} failed: ${failure.message}`);
    }
  }

  /** Pages through the Voided Purchases API from `startTimeMillis`. */
  async *voidedPurchases(packageName: string, startTimeMillis: number): AsyncGenerator<androidpublisher_v3.Schema$VoidedPurchase[]> {
    let pageToken: string | undefined;
    do {
      const res = await this.api.purchases.voidedpurchases.list(
        { packageName, startTime: String(startTimeMillis), type: 1, maxResults: 1000, token: pageToken },
        { timeout: this.config.requestTimeoutMs },
      );
      yield res.data.voidedPurchases ?? [];
      pageToken = res.data.tokenPagination?.nextPageToken ?? undefined;
    } while (pageToken);
  }

  get packageNames(): readonly string[] {
    return this.config.packageNames;
  }

  private async alreadyDone(task: StoreTaskSpec): Promise<boolean> {
    try {
      const options = { timeout: this.config.requestTimeoutMs };
      if (task.kind === 'ACKNOWLEDGE_SUBSCRIPTION') {
        const res = await this.api.purchases.subscriptionsv2.get({ packageName: task.packageName, token: task.token }, options);
        return res.data.acknowledgementState === 'ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED';
      }
      const res = await this.api.purchases.products.get({ packageName: task.packageName, productId: task.productId, token: task.token }, options);
      return task.kind === 'CONSUME_PRODUCT' ? res.data.consumptionState === 1 : res.data.acknowledgementState === 1;
    } catch {
      return false;
    }
  }

  private packageNameOf(proof: GoogleProof): string | null {
    const configured = this.config.packageNames;
    if (proof.packageName) return configured.includes(proof.packageName) ? proof.packageName : null;
    return configured.length === 1 ? configured[0]! : null;
  }

  /** Null when fine (or not submitted / no key configured); otherwise why the signed JSON is not acceptable. */
  private checkClientProof(proof: GoogleProof, packageName: string): string | null {
    const key = this.licenseKeys.get(packageName);
    if (!key || proof.originalJson === null || proof.signature === null) return null;
    if (!isSignedByLicenseKey(proof.originalJson, proof.signature, key)) return "the purchase JSON's signature does not verify with the app's license key";
    const claims = signedPurchaseClaims(proof.originalJson);
    if (!claims) return 'the signed purchase JSON is not a purchase object';
    if (claims.packageName !== packageName) return `the signed purchase is for package ${claims.packageName}, not ${packageName}`;
    if (!claims.productIds.includes(proof.productId)) return `the signed purchase is for ${claims.productIds.join(', ') || 'no product'}, not ${proof.productId}`;
    if (claims.purchaseToken !== proof.purchaseToken) return 'the signed purchase carries another purchase token';
    return null;
  }

  private failure(failure: GoogleFailure, what: string): GoogleReading {
    switch (failure.kind) {
      case 'NOT_FOUND':
        return { status: 'REJECTED', reason: 'INVALID_PURCHASE_TOKEN', message: 'Google does not know this purchase token' };
      case 'INVALID':
        return { status: 'REJECTED', reason: 'INVALID_PURCHASE_TOKEN', message: `Google refused the request: ${failure.message}` };
      case 'AUTH':
        this.logAuthFailure(failure);
        return { status: 'PENDING', reason: 'STORE_AUTH_FAILED', message: 'Google refused our credentials; the purchase is kept and verified once they are fixed' };
      default:
        this.log.warn({ store: 'PLAY_STORE', status: failure.status, error: failure.message }, `Google Play unavailable while ${what}`);
        return { status: 'PENDING', reason: 'STORE_UNAVAILABLE', message: 'Google Play could not be reached; the purchase is kept and verified later' };
    }
  }

  private logAuthFailure(failure: GoogleFailure): void {
    this.log.error(
      { store: 'PLAY_STORE', status: failure.status, error: failure.message, setting: this.config.serviceAccountSource },
      `Google Play refused the service account (${failure.status}): check ${this.config.serviceAccountSource} and that ` +
        `${this.config.serviceAccount.client_email} has access to the app in the Play Console (Users and permissions)`,
    );
  }
}
