// Stable error and reason codes. Services return or throw these; only the GraphQL edge turns them into
// `extensions.code`. Clients may switch on the codes: never rename one.

export const ERROR_CODES = [
  'BAD_USER_INPUT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'STORE_NOT_CONFIGURED',
  'STORE_UNAVAILABLE',
  'PRODUCT_NOT_IN_CATALOG',
  'INSUFFICIENT_CREDITS',
  'IDEMPOTENCY_KEY_REUSED',
  'QUERY_TOO_COMPLEX',
  'INTERNAL_SERVER_ERROR',
  /** The customer already has as many proofs waiting for their store as one customer may: nothing was kept. */
  'TOO_MANY_PENDING_PROOFS',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** A failure the caller can act on; `code` becomes the GraphQL `extensions.code`. */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** Why a submitted proof got the status it got (submitReceipt outcome `reason`). */
export const RECEIPT_REASONS = [
  'OK',
  'ALREADY_VERIFIED',
  'STORE_UNAVAILABLE',
  'STORE_AUTH_FAILED',
  'INVALID_SIGNATURE',
  'INVALID_CERTIFICATE',
  'INVALID_RECEIPT',
  'INVALID_PURCHASE_TOKEN',
  'WRONG_APP',
  'WRONG_ENVIRONMENT',
  'PRODUCT_NOT_IN_CATALOG',
  'PURCHASE_CANCELED',
  'PURCHASE_PENDING',
  'RECEIPT_IN_USE',
  'TRANSFERRED',
  /** Kept before the store was asked; the store has not answered yet. */
  'VERIFYING',
] as const;
export type ReceiptReason = (typeof RECEIPT_REASONS)[number];

export const RECEIPT_STATUSES = ['VERIFIED', 'ALREADY_VERIFIED', 'PENDING', 'REJECTED'] as const;
export type ReceiptStatus = (typeof RECEIPT_STATUSES)[number];
