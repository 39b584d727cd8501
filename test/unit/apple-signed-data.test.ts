// Apple signed-data verification: the chain-caching verifier must give the library's answer for every input,
// on Apple's real signed notification (../shared/fixtures/apple) and on generated chains.
import { sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppleSignedData, type AppleSignedDataOptions, type SignedDataResult } from '../../src/stores/apple/signed-data.js';
import { generateAppleChain, signAppleJws } from '../fakes/apple-certs.js';

const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures/apple');
const appleRoot = readFileSync(`${FIXTURES}/AppleRootCA-G3.cer`);
const realNotification = readFileSync(`${FIXTURES}/sandbox-test-notification.jws`, 'utf8').trim();
const FIXTURE_BUNDLE = 'com.loki-project.loki-messenger';

const fixtureOptions: AppleSignedDataOptions = {
  rootCertificates: [appleRoot],
  bundleId: FIXTURE_BUNDLE,
  appAppleId: null,
  environment: 'SANDBOX',
  acceptSandbox: true,
  onlineChecks: false,
};

/** The same verification with our verifier and with the library's own. */
function both(options: AppleSignedDataOptions) {
  return { fast: new AppleSignedData(options), library: new AppleSignedData({ ...options, libraryOnly: true }) };
}

const outcome = (r: SignedDataResult<unknown>) => (r.ok ? `OK:${r.environment}` : r.reason);

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Changes one base64url character so that the decoded bits change (flip the top bit of its 6). */
function mutateAt(jws: string, index: number): string {
  const i = B64URL.indexOf(jws[index]!);
  return jws.slice(0, index) + B64URL[i ^ 32] + jws.slice(index + 1);
}

function positions(start: number, end: number, count: number): number[] {
  const step = Math.max(1, Math.floor((end - start) / count));
  const out: number[] = [];
  for (let i = start; i < end; i += step) out.push(i);
  out.push(end - 1);
  return out;
}

describe("Apple's real sandbox notification", () => {
  const [header, payload] = realNotification.split('.');
  const payloadStart = header!.length + 1;
  const signatureStart = payloadStart + payload!.length + 1;

  it('is accepted as it is, by our verifier and by the library', async () => {
    const { fast, library } = both(fixtureOptions);
    for (const v of [fast, library]) {
      const r = await v.notification(realNotification);
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(r.value.notificationUUID).toBe('592751ef-c1b8-47fc-929e-d62dee66df4c');
        expect(r.environment).toBe('SANDBOX');
      }
    }
  });

  const alterations: [what: string, indexes: number[]][] = [
    ['a payload character', positions(payloadStart, signatureStart - 1, 40)],
    ['a signature character', positions(signatureStart, realNotification.length, 40)],
    ['a header (certificate chain) character', positions(0, header!.length, 40)],
  ];
  it.each(alterations)('is rejected with %s changed, with the same answer from both verifiers', async (_what, indexes) => {
    const { fast, library } = both(fixtureOptions);
    for (const index of indexes) {
      const altered = mutateAt(realNotification, index);
      const [a, b] = [await fast.notification(altered), await library.notification(altered)];
      expect({ index, result: outcome(a) }).toEqual({ index, result: outcome(b) });
      expect(a.ok, `position ${index}`).toBe(false);
    }
  });

  const misconfigured: [what: string, options: Partial<AppleSignedDataOptions>, reason: string][] = [
    ['another bundle id', { bundleId: 'com.example.other' }, 'WRONG_APP'],
    // The notification names no appAppleId, which a production verifier checks before the environment.
    ['the production environment', { environment: 'PRODUCTION', appAppleId: 1234567890, acceptSandbox: false }, 'WRONG_APP'],
    ['another root certificate', { rootCertificates: [generateAppleChain().rootDer] }, 'INVALID_SIGNATURE'],
  ];
  it.each(misconfigured)('is rejected when the server expects %s', async (_what, change, reason) => {
    const { fast, library } = both({ ...fixtureOptions, ...change });
    const [a, b] = [await fast.notification(realNotification), await library.notification(realNotification)];
    expect(outcome(a)).toBe(reason);
    expect(outcome(b)).toBe(reason);
  });

  it('is rejected as garbage the same way by both', async () => {
    const { fast, library } = both(fixtureOptions);
    for (const garbage of ['', 'abc', 'a.b.c', realNotification.slice(0, signatureStart - 1), `${realNotification}.x`]) {
      expect(outcome(await fast.notification(garbage))).toBe(outcome(await library.notification(garbage)));
      expect((await fast.notification(garbage)).ok).toBe(false);
    }
  });
});

describe('generated chains', () => {
  const BUNDLE = 'com.example.app';
  const chain = generateAppleChain();
  const signedDate = Date.parse('2026-06-01T00:00:00Z');
  const transaction = (environment: string, extra: Record<string, unknown> = {}) =>
    signAppleJws(
      {
        transactionId: '2000000001',
        originalTransactionId: '2000000001',
        bundleId: BUNDLE,
        productId: 'pro.monthly',
        purchaseDate: signedDate - 1000,
        expiresDate: signedDate + 30 * 86_400_000,
        type: 'Auto-Renewable Subscription',
        inAppOwnershipType: 'PURCHASED',
        environment,
        signedDate,
        ...extra,
      },
      chain,
    );
  const production: AppleSignedDataOptions = {
    rootCertificates: [chain.rootDer],
    bundleId: BUNDLE,
    appAppleId: 1234567890,
    environment: 'PRODUCTION',
    acceptSandbox: false,
    onlineChecks: false,
  };

  const cases: [what: string, options: Partial<AppleSignedDataOptions>, jws: () => string, expected: string][] = [
    ['a production transaction on a production server', {}, () => transaction('Production'), 'OK:PRODUCTION'],
    ['a sandbox transaction when sandbox is not accepted', {}, () => transaction('Sandbox'), 'WRONG_ENVIRONMENT'],
    ['a sandbox transaction when sandbox is accepted (App Review)', { acceptSandbox: true }, () => transaction('Sandbox'), 'OK:SANDBOX'],
    ['a production transaction on a sandbox server', { environment: 'SANDBOX' }, () => transaction('Production'), 'WRONG_ENVIRONMENT'],
    ['another app', {}, () => transaction('Production', { bundleId: 'com.example.other' }), 'WRONG_APP'],
    ['a payload that is not a transaction', {}, () => signAppleJws({ signedDate, environment: 'Production', bundleId: BUNDLE, quantity: 'many' }, chain), 'INVALID_RECEIPT'],
  ];
  it.each(cases)('%s', async (_what, change, jws, expected) => {
    const { fast, library } = both({ ...production, ...change });
    const signed = jws();
    expect(outcome(await fast.transaction(signed))).toBe(expected);
    expect(outcome(await library.transaction(signed))).toBe(expected);
  });

  // Each defective chain has its own root, which the server is configured to trust: only the defect differs.
  const defects: [what: string, defect: Parameters<typeof generateAppleChain>[0], expected: string][] = [
    ['a leaf that expired before the signed date', { leafNotAfter: new Date(signedDate - 86_400_000) }, 'INVALID_CERTIFICATE'],
    ['a leaf not yet valid at the signed date', { leafNotBefore: new Date(signedDate + 86_400_000) }, 'INVALID_CERTIFICATE'],
    ['a leaf without the App Store marker extension', { omitLeafOid: true }, 'INVALID_SIGNATURE'],
    ['an intermediate without the WWDR marker extension', { omitIntermediateOid: true }, 'INVALID_SIGNATURE'],
  ];
  it.each(defects)('rejects %s like the library does', async (_what, defect, expected) => {
    const defective = generateAppleChain(defect);
    const { fast, library } = both({ ...production, rootCertificates: [defective.rootDer] });
    const signed = signAppleJws(payloadOf(transaction('Production')), defective);
    expect(outcome(await fast.transaction(signed))).toBe(expected);
    expect(outcome(await library.transaction(signed))).toBe(expected);
  });

  it('rejects a transaction signed by a key other than the leaf certificate’s', async () => {
    const other = generateAppleChain();
    const forged = signAppleJws(payloadOf(transaction('Production')), { leafKey: other.leafKey, x5c: chain.x5c });
    const { fast, library } = both(production);
    expect(outcome(await fast.transaction(forged))).toBe('INVALID_SIGNATURE');
    expect(outcome(await library.transaction(forged))).toBe('INVALID_SIGNATURE');
  });

  it('runs the chain-caching verifier by default, and Apple’s own with online checks', () => {
    expect(new AppleSignedData(production).implementation).toBe('chain-cache');
    expect(new AppleSignedData({ ...production, onlineChecks: true }).implementation).toBe('library');
    expect(new AppleSignedData({ ...production, libraryOnly: true }).implementation).toBe('library');
  });

  // Odd headers: whatever they hold, both verifiers answer alike.
  const headers: [what: string, x5c: (x5c: string[]) => unknown][] = [
    ['no x5c', () => undefined],
    ['x5c as an object with a length', (x) => ({ length: 3, 0: x[0], 1: x[1], 2: x[2] })],
    ['x5c as a string', () => 'abc'],
    ['two certificates', (x) => x.slice(0, 2)],
    ['four certificates', (x) => [...x, x[2]]],
    ['certificates as byte arrays', (x) => x.map((c) => [...Buffer.from(c, 'base64')])],
    ['certificates padded with spaces', (x) => x.map((c) => c.replace(/(.{64})/g, '$1 '))],
    ['certificates as numbers', () => [1, 2, 3]],
  ];
  it.each(headers)('answers like the library for a header with %s', async (_what, x5c) => {
    const signed = transaction('Production');
    const [, payload] = signed.split('.');
    const header = Buffer.from(JSON.stringify({ alg: 'ES256', x5c: x5c([...chain.x5c]) })).toString('base64url');
    const input = `${header}.${payload}.${signAppleJwsSignature(`${header}.${payload}`)}`;
    const { fast, library } = both(production);
    // Twice: the second answer may come from the cache.
    for (let i = 0; i < 2; i++) expect(outcome(await fast.transaction(input))).toBe(outcome(await library.transaction(input)));
  });
  function signAppleJwsSignature(signingInput: string): string {
    return sign('sha256', Buffer.from(signingInput), { key: chain.leafKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  }

  it('checks the date on every call, also for a chain it has cached', async () => {
    const shortLived = generateAppleChain({ leafNotBefore: new Date(signedDate - 86_400_000), leafNotAfter: new Date(signedDate + 86_400_000) });
    const fast = new AppleSignedData({ ...production, rootCertificates: [shortLived.rootDer] });
    const inside = signAppleJws(payloadOf(transaction('Production')), shortLived);
    const after = signAppleJws({ ...payloadOf(transaction('Production')), signedDate: signedDate + 3 * 86_400_000 }, shortLived);
    expect(outcome(await fast.transaction(inside))).toBe('OK:PRODUCTION');
    expect(outcome(await fast.transaction(after))).toBe('INVALID_CERTIFICATE');
    expect(outcome(await fast.transaction(inside))).toBe('OK:PRODUCTION');
  });
});

function payloadOf(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
