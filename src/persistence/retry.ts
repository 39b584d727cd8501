// Runs a unit of work again when PostgreSQL aborted it to break a deadlock or a serialization conflict:
// both are safe to retry because the whole transaction was rolled back.
import { DeadlockException } from '@mikro-orm/core';

const RETRYABLE_CODES = new Set(['40P01', '40001']);

export function isRetryableConflict(err: unknown): boolean {
  if (err instanceof DeadlockException) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRYABLE_CODES.has(code);
}

export async function retryOnConflict<T>(work: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (attempt >= attempts || !isRetryableConflict(err)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
    }
  }
}
