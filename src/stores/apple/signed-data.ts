// Verification of Apple's signed data (StoreKit 2 transactions, renewal info, App Store Server Notifications).
//
// Apple's `SignedDataVerifier` re-validates the whole certificate chain on every call when online checks are
// off (about 240 verifications/s on one core). `ChainCachingVerifier` keeps every rule of the library and
// remembers only what cannot change for the same certificate bytes: whether the leaf and intermediate chain to
// a trusted root with Apple's marker extensions, and the leaf's public key. Certificate dates are still checked
// on every call, at the payload's signedDate, exactly as the library does.
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import {
  Environment,
  SignedDataVerifier,
  VerificationException,
  VerificationStatus,
  type JWSRenewalInfoDecodedPayload,
  type JWSTransactionDecodedPayload,
  type ResponseBodyV2DecodedPayload,
} from '@apple/app-store-server-library';
import jsonwebtoken from 'jsonwebtoken';
import jsrsasign from 'jsrsasign';
import type { AppleEnvironment } from '../../config/config.js';
import type { ReceiptReason } from '../../domain/errors.js';

/** Apple's marker extensions: the WWDR intermediate and the App Store receipt-signing leaf. */
const INTERMEDIATE_OID = '1.2.840.113635.100.6.2.1';
const LEAF_OID = '1.2.840.113635.100.6.11.1';
/** The library's allowed clock skew on certificate dates. */
const MAX_SKEW_MS = 60_000;
const CHAIN_CACHE_SIZE = 256;

type Validator<T> = { validate(obj: unknown): obj is T };

interface CachedChain {
  /** Null when the chain is not acceptable whatever the date. */
  publicKey: KeyObject | null;
  /** Validity windows of leaf, intermediate and the root it chains to. */
  windows: readonly (readonly [from: number, to: number])[];
}

/** The library's verifier, with chain validation remembered per exact certificate bytes (offline mode only). */
export class ChainCachingVerifier extends SignedDataVerifier {
  private readonly roots: X509Certificate[];
  private readonly chains = new Map<string, CachedChain>();

  constructor(rootCertificates: Buffer[], environment: Environment, bundleId: string, appAppleId?: number) {
    super(rootCertificates, false, environment, bundleId, appAppleId);
    this.roots = rootCertificates.map((der) => new X509Certificate(der));
  }

  // Mirrors SignedDataVerifier.verifyJWT step for step (same decode, validator, header rules and statuses);
  // only the chain check is served from the cache.
  protected override async verifyJWT<T>(jwt: string, validator: Validator<T>, signedDateExtractor: (decoded: T) => Date): Promise<T> {
    try {
      const decoded = jsonwebtoken.decode(jwt) as T;
      if (!validator.validate(decoded)) throw new VerificationException(VerificationStatus.FAILURE);
      let key: string;
      let cached: CachedChain | undefined;
      let parsed: [X509Certificate, X509Certificate] | undefined;
      try {
        const header = JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString('utf8')) as { x5c?: unknown };
        const x5c = header.x5c ?? [];
        // The library fails on anything but an array (slice/map), inside the block that answers INVALID_CERTIFICATE.
        if (!Array.isArray(x5c)) throw new TypeError('x5c is not an array');
        if (x5c.length != 3) throw new VerificationException(VerificationStatus.INVALID_CHAIN_LENGTH);
        const [leafDer, intermediateDer] = x5c.slice(0, 2).map((cert) => Buffer.from(cert as string, 'base64')) as [Buffer, Buffer];
        // Keyed by the certificates' exact bytes (not the header text, which can be padded at will), so the cache
        // stays small whatever a sender puts in the header.
        key = createHash('sha256').update(`${leafDer.length}:`).update(leafDer).update(intermediateDer).digest('base64');
        cached = this.chains.get(key);
        if (!cached) parsed = [new X509Certificate(leafDer), new X509Certificate(intermediateDer)];
      } catch (error) {
        throw new VerificationException(VerificationStatus.INVALID_CERTIFICATE, error instanceof Error ? error : undefined);
      }
      // Outside the block above, as in the library: a failure while checking the chain is a VERIFICATION_FAILURE.
      const chain = cached ?? this.remember(key, this.validateChain(...parsed!));
      if (chain.publicKey === null) throw new VerificationException(VerificationStatus.VERIFICATION_FAILURE);
      const at = signedDateExtractor(decoded).getTime();
      for (const [from, to] of chain.windows) {
        if (from > at + MAX_SKEW_MS || to < at - MAX_SKEW_MS) throw new VerificationException(VerificationStatus.INVALID_CERTIFICATE);
      }
      jsonwebtoken.verify(jwt, chain.publicKey);
      return decoded;
    } catch (error) {
      if (error instanceof VerificationException) throw error;
      throw new VerificationException(VerificationStatus.VERIFICATION_FAILURE, error instanceof Error ? error : undefined);
    }
  }

  private remember(key: string, entry: CachedChain): CachedChain {
    if (this.chains.size >= CHAIN_CACHE_SIZE) this.chains.delete(this.chains.keys().next().value!);
    this.chains.set(key, entry);
    return entry;
  }

  /** The library's date-independent chain rules (verifyCertificateChainWithoutCaching), evaluated once. */
  private validateChain(leaf: X509Certificate, intermediate: X509Certificate): CachedChain {
    let root: X509Certificate | undefined;
    for (const candidate of this.roots) {
      if (intermediate.verify(candidate.publicKey) && intermediate.issuer === candidate.subject) root = candidate;
    }
    const valid =
      root !== undefined &&
      leaf.verify(intermediate.publicKey) &&
      leaf.issuer === intermediate.subject &&
      intermediate.ca &&
      hasExtension(leaf, LEAF_OID) &&
      hasExtension(intermediate, INTERMEDIATE_OID);
    if (!valid) return { publicKey: null, windows: [] };
    return { publicKey: leaf.publicKey, windows: [leaf, intermediate, root!].map((c) => [Date.parse(c.validFrom), Date.parse(c.validTo)] as const) };
  }
}

function hasExtension(cert: X509Certificate, oid: string): boolean {
  const parsed = new jsrsasign.X509();
  parsed.readCertHex(cert.raw.toString('hex'));
  return parsed.getExtInfo(oid) !== undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Environment selection and error mapping
// ---------------------------------------------------------------------------------------------------------

export type SignedDataResult<T> =
  | { ok: true; value: T; environment: AppleEnvironment }
  /** `retryable`: Apple's revocation service could not be reached (online checks only). */
  | { ok: false; reason: ReceiptReason; message: string; retryable: boolean };

export interface AppleSignedDataOptions {
  rootCertificates: readonly Buffer[];
  bundleId: string;
  appAppleId: number | null;
  environment: AppleEnvironment;
  acceptSandbox: boolean;
  onlineChecks: boolean;
  /** Use the library's verifier as is (the reference the fast one is tested and benchmarked against). */
  libraryOnly?: boolean;
}

const LIBRARY_ENVIRONMENT: Record<AppleEnvironment, Environment> = { PRODUCTION: Environment.PRODUCTION, SANDBOX: Environment.SANDBOX };
const OUR_ENVIRONMENT: Partial<Record<string, AppleEnvironment>> = { Production: 'PRODUCTION', Sandbox: 'SANDBOX' };

/**
 * Verifies Apple's signed data for one app. A PRODUCTION deployment that accepts sandbox data keeps one
 * verifier per environment and picks it by the environment the payload claims; the chosen verifier checks
 * that claim along with the signature, so a payload that lies about its environment is still rejected.
 */
export class AppleSignedData {
  private readonly verifiers = new Map<AppleEnvironment, SignedDataVerifier>();
  private readonly primary: SignedDataVerifier;
  /** Which verifier runs: ours with the chain cache, or Apple's as is (online checks, reference runs). */
  readonly implementation: 'chain-cache' | 'library';

  constructor(private readonly o: AppleSignedDataOptions) {
    const environments: AppleEnvironment[] = [o.environment];
    if (o.environment === 'PRODUCTION' && o.acceptSandbox) environments.push('SANDBOX');
    for (const env of environments) this.verifiers.set(env, this.create(env));
    this.primary = this.verifiers.get(o.environment)!;
    this.implementation = this.primary instanceof ChainCachingVerifier ? 'chain-cache' : 'library';
  }

  private create(env: AppleEnvironment): SignedDataVerifier {
    const roots = [...this.o.rootCertificates];
    const appAppleId = this.o.appAppleId ?? undefined;
    if (this.o.onlineChecks || this.o.libraryOnly) return new SignedDataVerifier(roots, this.o.onlineChecks, LIBRARY_ENVIRONMENT[env], this.o.bundleId, appAppleId);
    return new ChainCachingVerifier(roots, LIBRARY_ENVIRONMENT[env], this.o.bundleId, appAppleId);
  }

  transaction(jws: string): Promise<SignedDataResult<JWSTransactionDecodedPayload>> {
    return this.run(jws, (p) => p.environment, (v) => v.verifyAndDecodeTransaction(jws));
  }

  renewalInfo(jws: string): Promise<SignedDataResult<JWSRenewalInfoDecodedPayload>> {
    return this.run(jws, (p) => p.environment, (v) => v.verifyAndDecodeRenewalInfo(jws));
  }

  notification(jws: string): Promise<SignedDataResult<ResponseBodyV2DecodedPayload>> {
    return this.run(jws, (p) => p.data?.environment ?? p.summary?.environment ?? p.appData?.environment, (v) => v.verifyAndDecodeNotification(jws));
  }

  private async run<T>(jws: string, claimedEnvironment: (payload: any) => unknown, verify: (v: SignedDataVerifier) => Promise<T>): Promise<SignedDataResult<T>> {
    const claimed = OUR_ENVIRONMENT[String(claimedEnvironment(safeDecode(jws) ?? {}))];
    const verifier = (claimed && this.verifiers.get(claimed)) || this.primary;
    const environment = claimed && this.verifiers.has(claimed) ? claimed : this.o.environment;
    try {
      return { ok: true, value: await verify(verifier), environment };
    } catch (err) {
      if (!(err instanceof VerificationException)) throw err;
      return { ok: false, ...describeVerificationFailure(err.status, claimed, this.o) };
    }
  }
}

function safeDecode(jws: string): Record<string, unknown> | null {
  try {
    const payload = jsonwebtoken.decode(jws);
    return payload !== null && typeof payload === 'object' ? (payload as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The stable reason (and a support-friendly message) for a library verification status. */
export function describeVerificationFailure(
  status: VerificationStatus,
  claimed: AppleEnvironment | undefined,
  o: Pick<AppleSignedDataOptions, 'bundleId' | 'environment' | 'acceptSandbox'>,
): { reason: ReceiptReason; message: string; retryable: boolean } {
  switch (status) {
    case VerificationStatus.INVALID_APP_IDENTIFIER:
      return { reason: 'WRONG_APP', message: `signed for another app (this server serves bundle id ${o.bundleId})`, retryable: false };
    case VerificationStatus.INVALID_ENVIRONMENT:
      return {
        reason: 'WRONG_ENVIRONMENT',
        message:
          claimed === 'SANDBOX' && o.environment === 'PRODUCTION'
            ? 'a sandbox purchase, and this server does not accept sandbox purchases (APPLE_ACCEPT_SANDBOX)'
            : `signed for another App Store environment (this server serves ${o.environment})`,
        retryable: false,
      };
    case VerificationStatus.INVALID_CERTIFICATE:
      return { reason: 'INVALID_CERTIFICATE', message: "the signing certificate is malformed or was not valid at the payload's signed date", retryable: false };
    case VerificationStatus.RETRYABLE_VERIFICATION_FAILURE:
      return { reason: 'STORE_UNAVAILABLE', message: "Apple's certificate revocation service could not be reached", retryable: true };
    case VerificationStatus.FAILURE:
      return { reason: 'INVALID_RECEIPT', message: 'not a well-formed Apple signed payload', retryable: false };
    default:
      return { reason: 'INVALID_SIGNATURE', message: "the signature does not verify with a certificate chain to Apple's root", retryable: false };
  }
}
