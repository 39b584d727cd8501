// The client-proof check on the real Google Play purchase, signature and license key in ../shared/fixtures.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isSignedByLicenseKey, licenseKey, signedPurchaseClaims } from '../../src/stores/google/license.js';

const dir = new URL('../../../shared/fixtures/google/', import.meta.url);
const json = readFileSync(new URL('purchase-original.json', dir), 'utf8');
const signature = readFileSync(new URL('purchase-signature.txt', dir), 'utf8').trim();
const key = licenseKey(readFileSync(new URL('license-public-key.txt', dir), 'utf8').trim());

const flipCharAt = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

describe('Google Play license-key signature (real fixture)', () => {
  it('accepts the real purchase JSON with its real signature', () => {
    expect(isSignedByLicenseKey(json, signature, key)).toBe(true);
  });

  it.each([
    ['one changed byte in the JSON', flipCharAt(json, 20), signature],
    ['the JSON with a trailing newline', `${json}\n`, signature],
    ['the JSON re-serialized with spaces', JSON.stringify(JSON.parse(json), null, 1), signature],
    ['one changed character in the signature', json, flipCharAt(signature, 10)],
    ['a truncated signature', json, signature.slice(0, -8)],
    ['an empty signature', json, ''],
    ['a signature that is not base64', json, '!!!not-base64!!!'],
  ])('rejects %s', (_name, candidateJson, candidateSignature) => {
    expect(isSignedByLicenseKey(candidateJson, candidateSignature, key)).toBe(false);
  });

  it('rejects the real pair under another key', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    expect(isSignedByLicenseKey(json, signature, other)).toBe(false);
  });

  it('reads package, product and token from the signed JSON', () => {
    expect(signedPurchaseClaims(json)).toEqual({
      packageName: 'com.topdox.android.trivialdrivesample2',
      productIds: ['topdox_android_monthly_subscription'],
      purchaseToken: JSON.parse(json).purchaseToken,
    });
    expect(signedPurchaseClaims('[1]')).toBeNull();
    expect(signedPurchaseClaims('{')).toBeNull();
  });
});
