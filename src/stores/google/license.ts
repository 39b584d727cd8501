// The optional client-proof check: Google Play signs the purchase JSON the app receives
// (Purchase.getOriginalJson()) with the app's license key: RSASSA-PKCS1-v1_5 with SHA-1 over the exact bytes.
import { createPublicKey, createVerify, type KeyObject } from 'node:crypto';

export function licenseKey(base64Der: string): KeyObject {
  return createPublicKey({ key: Buffer.from(base64Der, 'base64'), format: 'der', type: 'spki' });
}

/** True when `signatureBase64` is the license key's signature over exactly `originalJson`'s UTF-8 bytes. */
export function isSignedByLicenseKey(originalJson: string, signatureBase64: string, key: KeyObject): boolean {
  const signature = Buffer.from(signatureBase64, 'base64');
  if (signature.length === 0 || signature.toString('base64').replace(/=+$/, '') !== signatureBase64.trim().replace(/=+$/, '')) return false;
  const verifier = createVerify('RSA-SHA1');
  verifier.update(Buffer.from(originalJson, 'utf8'));
  return verifier.verify(key, signature);
}

export interface SignedPurchaseClaims {
  packageName: string | null;
  productIds: string[];
  purchaseToken: string | null;
}

/** What the signed JSON says, to compare with the submission. Null when it is not a purchase JSON object. */
export function signedPurchaseClaims(originalJson: string): SignedPurchaseClaims | null {
  let doc: unknown;
  try {
    doc = JSON.parse(originalJson);
  } catch {
    return null;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return null;
  const d = doc as Record<string, unknown>;
  const productIds = Array.isArray(d.productIds) ? d.productIds.filter((x): x is string => typeof x === 'string') : [];
  if (typeof d.productId === 'string') productIds.push(d.productId);
  return {
    packageName: typeof d.packageName === 'string' ? d.packageName : null,
    productIds,
    purchaseToken: typeof d.purchaseToken === 'string' ? d.purchaseToken : null,
  };
}
