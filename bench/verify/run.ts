// Signed-transaction verification rate on one core: our chain-caching verifier beside Apple's own
// SignedDataVerifier (which re-validates the certificate chain on every call), and a bare ES256 verify of the
// same JWS with the leaf key as the floor of what any verifier must spend. Target: >= 2,000 verified/s.
//   npm run bench:verify            (BENCH_SECONDS per contestant, default 3)
import { X509Certificate, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AppleSignedData, type AppleSignedDataOptions } from '../../src/stores/apple/signed-data.js';
import { generateAppleChain, signAppleJws } from '../../test/fakes/apple-certs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const TARGET_PER_SECOND = 2_000;
const BUNDLE = 'com.example.app';

const chain = generateAppleChain();
const signedDate = Date.now();
// Distinct payloads, as a server sees them: only the certificate chain repeats.
const transactions = Array.from({ length: 5_000 }, (_, i) =>
  signAppleJws(
    {
      transactionId: String(3_000_000_000 + i),
      originalTransactionId: String(3_000_000_000 + i),
      bundleId: BUNDLE,
      productId: 'pro.monthly',
      purchaseDate: signedDate - 60_000,
      expiresDate: signedDate + 30 * 86_400_000,
      type: 'Auto-Renewable Subscription',
      inAppOwnershipType: 'PURCHASED',
      environment: 'Production',
      signedDate,
    },
    chain,
  ),
);
const options: AppleSignedDataOptions = {
  rootCertificates: [chain.rootDer],
  bundleId: BUNDLE,
  appAppleId: 1234567890,
  environment: 'PRODUCTION',
  acceptSandbox: false,
  onlineChecks: false,
};

async function rate(name: string, verifyOne: (jws: string) => Promise<boolean> | boolean, inputs: readonly string[] = transactions): Promise<number> {
  for (let i = 0; i < 200; i++) if (!(await verifyOne(inputs[i % inputs.length]!))) throw new Error(`${name} rejected a valid transaction`);
  let done = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(SECONDS * 1e9);
  while (process.hrtime.bigint() < deadline) {
    for (let i = 0; i < 50; i++) {
      if (!(await verifyOne(inputs[done % inputs.length]!))) throw new Error(`${name} rejected a valid transaction`);
      done++;
    }
  }
  const perSecond = done / (Number(process.hrtime.bigint() - start) / 1e9);
  console.log(`${name.padEnd(44)} ${Math.round(perSecond).toLocaleString('en-US').padStart(8)} verified/s`);
  return perSecond;
}

const ours = new AppleSignedData(options);
const library = new AppleSignedData({ ...options, libraryOnly: true });
const leafKey = new X509Certificate(Buffer.from(chain.x5c[0], 'base64')).publicKey;

console.log(`signed transactions, one core, ${SECONDS}s each (node ${process.version})`);
const baseline = await rate("baseline: library's SignedDataVerifier", async (jws) => (await library.transaction(jws)).ok);
const fast = await rate('ours: ChainCachingVerifier', async (jws) => (await ours.transaction(jws)).ok);
await rate('floor: bare ES256 verify with the leaf key', (jws) => {
  const [h, p, s] = jws.split('.');
  return verify('sha256', Buffer.from(`${h}.${p}`), { key: leafKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(s!, 'base64url'));
});
console.log(`ours / baseline: ${(fast / baseline).toFixed(1)}x; target >= ${TARGET_PER_SECOND.toLocaleString('en-US')}/s: ${fast >= TARGET_PER_SECOND ? 'met' : 'NOT met'}`);

// Apple's real certificate chain (its leaf and WWDR intermediate are larger than the generated ones).
const fixtures = resolve(import.meta.dirname, '../../../../shared/fixtures/apple');
const real = [readFileSync(`${fixtures}/sandbox-test-notification.jws`, 'utf8').trim()];
const realOptions: AppleSignedDataOptions = {
  rootCertificates: [readFileSync(`${fixtures}/AppleRootCA-G3.cer`)],
  bundleId: 'com.loki-project.loki-messenger',
  appAppleId: null,
  environment: 'SANDBOX',
  acceptSandbox: true,
  onlineChecks: false,
};
const realOurs = new AppleSignedData(realOptions);
const realLibrary = new AppleSignedData({ ...realOptions, libraryOnly: true });
console.log("\nApple's real signed notification (../shared/fixtures/apple), same payload repeatedly");
const realBaseline = await rate("baseline: library's SignedDataVerifier", async (jws) => (await realLibrary.notification(jws)).ok, real);
const realFast = await rate('ours: ChainCachingVerifier', async (jws) => (await realOurs.notification(jws)).ok, real);
console.log(`ours / baseline: ${(realFast / realBaseline).toFixed(1)}x`);
