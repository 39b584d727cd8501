import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { receiptShapeProblem } from '../../src/stores/apple/verify-receipt.js';

/** How Apple's app receipts open: PKCS#7 signedData in indefinite-length BER ("MIAGCSqGSIb3DQEHAqCA..."). */
const APPLE_RECEIPT_HEAD = 'MIAGCSqGSIb3DQEHAqCAMIACAQExCzAJBgUrDgMCGgUAMIAGCSqGSIb3DQEHAaCAJIAEggGrMYIBpzAKAgEIAgEBBAIWADAKAgEUAgEBBAIMADAL';
const appleLike = APPLE_RECEIPT_HEAD + randomBytes(3000).toString('base64');

const SIGNED_DATA_OID = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
/** Definite-length DER with a two-byte length, as other encoders write it. */
function definite(contentBytes: number): Buffer {
  const content = Buffer.concat([Buffer.from(SIGNED_DATA_OID), randomBytes(contentBytes - SIGNED_DATA_OID.length)]);
  return Buffer.concat([Buffer.from([0x30, 0x82, content.length >> 8, content.length & 0xff]), content]);
}

describe('legacy receipt shape', () => {
  it.each([
    ['Apple’s indefinite-length receipt', appleLike],
    ['wrapped in lines', appleLike.replace(/(.{64})/g, '$1\r\n')],
    ['without padding', definite(1001).toString('base64').replace(/=+$/, '')],
    ['definite-length DER', definite(2000).toString('base64')],
    ['with trailing bytes after the container', Buffer.concat([definite(500), Buffer.from([0, 0])]).toString('base64')],
  ])('accepts %s', (_what, receipt) => {
    expect(receiptShapeProblem(receipt)).toBeNull();
  });

  it.each([
    ['empty', '  \n', 'empty'],
    ['not base64', 'not a receipt!', 'not base64'],
    ['URL-safe base64', `${APPLE_RECEIPT_HEAD}-_`, 'not base64'],
    ['a bad padding', `${APPLE_RECEIPT_HEAD}A=`, 'not base64'],
    ['a StoreKit 2 signed transaction', 'eyJhbGciOiJFUzI1NiJ9.eyJ4IjoxfQ.c2ln', 'apple.signedTransaction'],
    ['random base64', Buffer.concat([Buffer.from([0x04]), randomBytes(500)]).toString('base64'), 'not a PKCS#7 container'],
    ['a DER SEQUENCE that is not PKCS#7', Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]).toString('base64'), 'not a PKCS#7 container'],
    ['a length form DER does not have', Buffer.concat([Buffer.from([0x30, 0x85]), randomBytes(40)]).toString('base64'), 'not a PKCS#7 container'],
    ['a cut-short container', definite(2000).subarray(0, 1000).toString('base64'), 'cut short'],
  ])('refuses %s', (_what, receipt, problem) => {
    expect(receiptShapeProblem(receipt)).toContain(problem);
  });
});
