/**
 * Generated certificate chains shaped like Apple's App Store signing chain, and a JWS signer that uses them.
 *
 * Apple signs StoreKit 2 transactions, renewal info and Server Notifications V2 as compact JWS (ES256) whose
 * `x5c` header carries [leaf, intermediate, root]. `@apple/app-store-server-library`'s SignedDataVerifier
 * accepts such a chain when: the intermediate is signed by a trusted root and its issuer equals the root's
 * subject, the leaf is signed by the intermediate (same name rule), the intermediate is a CA, the leaf carries
 * the Apple OID 1.2.840.113635.100.6.11.1, the intermediate carries the WWDR OID 1.2.840.113635.100.6.2.1, and
 * all three certificates are valid at the payload's `signedDate` (with online checks off). Tests trust the
 * generated root instead of Apple Root CA G3; the options produce the broken variants the verifier must refuse.
 */
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import jsrsasign from 'jsrsasign';

const { KJUR } = jsrsasign;

/** Extension Apple puts on the App Store receipt-signing leaf certificate. */
export const APPLE_LEAF_OID = '1.2.840.113635.100.6.11.1';
/** Extension Apple puts on the Apple Worldwide Developer Relations intermediate CA. */
export const APPLE_WWDR_OID = '1.2.840.113635.100.6.2.1';

const DER_NULL_HEX = '0500';
const DEFAULT_NOT_BEFORE = new Date('2015-01-01T00:00:00Z');
const DEFAULT_NOT_AFTER = new Date('2045-01-01T00:00:00Z');

export interface AppleChainOptions {
  /** Validity of the root and intermediate (and of the leaf unless its own dates are given). */
  notBefore?: Date;
  notAfter?: Date;
  leafNotBefore?: Date;
  leafNotAfter?: Date;
  /** Leave out the leaf's Apple OID (the verifier must refuse the chain). */
  omitLeafOid?: boolean;
  /** Leave out the intermediate's WWDR OID (the verifier must refuse the chain). */
  omitIntermediateOid?: boolean;
}

export interface AppleChain {
  rootDer: Buffer;
  intermediateDer: Buffer;
  leafDer: Buffer;
  /** Private key of the leaf: signs the JWS. */
  leafKey: KeyObject;
  /** Base64 (not base64url) DER, in the order Apple puts them in the `x5c` header. */
  x5c: [leaf: string, intermediate: string, root: string];
}

interface CertSpec {
  subject: string;
  issuer: string;
  subjectPublicKey: KeyObject;
  issuerPrivateKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  ext: Array<{ extname: string; [param: string]: unknown }>;
}

/** A fresh P-256 root -> intermediate -> leaf chain; every call yields new keys and new (unique) names. */
export function generateAppleChain(options: AppleChainOptions = {}): AppleChain {
  const notBefore = options.notBefore ?? DEFAULT_NOT_BEFORE;
  const notAfter = options.notAfter ?? DEFAULT_NOT_AFTER;
  const root = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const intermediate = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  // A random tag keeps names of different generated chains apart, so a mix-up shows as a name mismatch too.
  const tag = randomBytes(4).toString('hex');
  const rootName = `/C=US/O=Fake Apple Inc./OU=Fake Apple Certification Authority/CN=Fake Apple Root CA - G3 ${tag}`;
  const intermediateName = `/C=US/O=Fake Apple Inc./OU=G6/CN=Fake Apple Worldwide Developer Relations CA ${tag}`;
  const leafName = `/C=US/O=Fake Apple Inc./OU=Fake Apple Worldwide Developer Relations/CN=Fake Prod ECC Mac App Store and iTunes Store Receipt Signing ${tag}`;

  const rootDer = makeCertificate({
    subject: rootName,
    issuer: rootName,
    subjectPublicKey: root.publicKey,
    issuerPrivateKey: root.privateKey,
    notBefore,
    notAfter,
    ext: [
      { extname: 'basicConstraints', cA: true, critical: true },
      { extname: 'keyUsage', critical: true, names: ['keyCertSign', 'cRLSign'] },
    ],
  });
  const intermediateDer = makeCertificate({
    subject: intermediateName,
    issuer: rootName,
    subjectPublicKey: intermediate.publicKey,
    issuerPrivateKey: root.privateKey,
    notBefore,
    notAfter,
    ext: [
      { extname: 'basicConstraints', cA: true, pathLen: 0, critical: true },
      { extname: 'keyUsage', critical: true, names: ['keyCertSign', 'cRLSign'] },
      ...(options.omitIntermediateOid === true ? [] : [{ extname: APPLE_WWDR_OID, extn: DER_NULL_HEX }]),
    ],
  });
  const leafDer = makeCertificate({
    subject: leafName,
    issuer: intermediateName,
    subjectPublicKey: leaf.publicKey,
    issuerPrivateKey: intermediate.privateKey,
    notBefore: options.leafNotBefore ?? notBefore,
    notAfter: options.leafNotAfter ?? notAfter,
    ext: [
      { extname: 'basicConstraints', cA: false },
      { extname: 'keyUsage', critical: true, names: ['digitalSignature'] },
      ...(options.omitLeafOid === true ? [] : [{ extname: APPLE_LEAF_OID, extn: DER_NULL_HEX }]),
    ],
  });
  return {
    rootDer,
    intermediateDer,
    leafDer,
    leafKey: leaf.privateKey,
    x5c: [leafDer.toString('base64'), intermediateDer.toString('base64'), rootDer.toString('base64')],
  };
}

/** Compact JWS the way Apple sends it: ES256 over base64url(header).base64url(payload), r||s signature. */
export function signAppleJws(payload: object, chain: Pick<AppleChain, 'leafKey' | 'x5c'>): string {
  const header = { alg: 'ES256', x5c: chain.x5c };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  // JWS wants the raw 64-byte r||s form, not DER (which is node's default for ECDSA).
  const signature = sign('sha256', Buffer.from(signingInput), { key: chain.leafKey, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${signature.toString('base64url')}`;
}

/** The payload of a compact JWS, without verifying anything (for assertions in tests). */
export function decodeJwsPayload<T = Record<string, unknown>>(jws: string): T {
  const part = jws.split('.')[1];
  if (part === undefined) throw new Error('not a compact JWS');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as T;
}

function makeCertificate(spec: CertSpec): Buffer {
  const cert = new KJUR.asn1.x509.Certificate({
    version: 3,
    // Positive serial: a leading 0x01 byte keeps the DER INTEGER from reading as negative.
    serial: { hex: '01' + randomBytes(15).toString('hex') },
    sigalg: 'SHA256withECDSA',
    issuer: { str: spec.issuer },
    subject: { str: spec.subject },
    notbefore: asn1Time(spec.notBefore),
    notafter: asn1Time(spec.notAfter),
    sbjpubkey: spec.subjectPublicKey.export({ type: 'spki', format: 'pem' }).toString(),
    ext: spec.ext,
    cakey: spec.issuerPrivateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  });
  return Buffer.from(cert.getEncodedHex(), 'hex');
}

/** RFC 5280: UTCTime (YYMMDDHHMMSSZ) through 2049, GeneralizedTime (YYYYMMDDHHMMSSZ) from 2050. */
function asn1Time(d: Date): string {
  const full = d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z'); // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050 && d.getUTCFullYear() >= 1950 ? full.slice(2) : full;
}

function b64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
