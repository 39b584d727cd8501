// The Google Play proof a client sends, checked and turned into the adapter's shape (submitReceipt, restore).
import { AppError } from '../domain/errors.js';
import type { GoogleProof } from '../stores/adapter.js';
import type { GoogleProofInput } from './types.js';

export function googleProofOf(g: GoogleProofInput): GoogleProof {
  if ((g.originalJson == null) !== (g.signature == null)) {
    throw new AppError('BAD_USER_INPUT', 'google.originalJson and google.signature go together');
  }
  return {
    store: 'PLAY_STORE',
    packageName: g.packageName ?? null,
    productId: g.productId,
    purchaseToken: g.purchaseToken,
    originalJson: g.originalJson ?? null,
    signature: g.signature ?? null,
  };
}
