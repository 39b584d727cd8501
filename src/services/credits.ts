// Spending consumable credits: never below zero, once per idempotency key, safe under concurrency
// (the balance row is locked for the length of the transaction).
import { AppError } from '../domain/errors.js';
import type { Orm } from '../persistence/orm.js';
import * as repo from '../persistence/repository.js';
import { retryOnConflict } from '../persistence/retry.js';

export interface SpendResult {
  currency: string;
  amount: number;
  balance: number;
  /** True when this idempotency key was already spent: nothing new was deducted. */
  replayed: boolean;
}

export class CreditService {
  constructor(
    private readonly orm: Orm,
    /** Called after a spend committed (its CREDIT_SPEND event queued webhooks). */
    private readonly afterSpend: () => void = () => undefined,
  ) {}

  async spend(appUserId: string, currency: string, amount: number, idempotencyKey: string, now: Date): Promise<SpendResult> {
    if (!Number.isInteger(amount) || amount < 1) throw new AppError('BAD_USER_INPUT', 'amount must be a positive whole number');
    if (idempotencyKey.length < 1 || idempotencyKey.length > 200) throw new AppError('BAD_USER_INPUT', 'idempotencyKey must be 1 to 200 characters');
    const result = await this.spendInTransaction(appUserId, currency, amount, idempotencyKey, now);
    if (!result.replayed) this.afterSpend();
    return result;
  }

  private spendInTransaction(appUserId: string, currency: string, amount: number, idempotencyKey: string, now: Date): Promise<SpendResult> {
    return retryOnConflict(() => this.orm.em.fork().transactional(async (em) => {
      // Customer first, then balance: the same lock order as recording purchases.
      const customerId = await repo.lockExistingCustomer(em, appUserId);
      if (!customerId) throw new AppError('INSUFFICIENT_CREDITS', `balance of ${currency} is 0`, { currency, balance: 0 });
      const key = `spend:${customerId}:${idempotencyKey}`;
      const balance = await repo.lockBalance(em, customerId, currency);
      const replay = await this.replayOf(em, key, currency, amount);
      if (replay) return replay;
      if (balance < amount) {
        throw new AppError('INSUFFICIENT_CREDITS', `balance of ${currency} is ${balance}, ${amount} needed`, { currency, balance });
      }
      const after = await repo.applyCredit(em, customerId, { key, currency, amount: -amount, reason: 'SPEND', transactionId: null }, balance);
      if (after === null) return (await this.replayOf(em, key, currency, amount))!;
      await repo.appendEvents(em, { customerId, store: null, environment: null, lineageId: null }, [
        { key, type: 'CREDIT_SPEND', occurredAt: now, productId: '', transactionId: '', data: { currency, amount, balance: after, idempotencyKey } },
      ]);
      return { currency, amount, balance: after, replayed: false };
    }));
  }

  private async replayOf(em: Parameters<typeof repo.findLedgerEntry>[0], key: string, currency: string, amount: number): Promise<SpendResult | null> {
    const entry = await repo.findLedgerEntry(em, key);
    if (!entry) return null;
    if (entry.currency !== currency || Number(entry.amount) !== -amount) {
      throw new AppError('IDEMPOTENCY_KEY_REUSED', 'this idempotencyKey was already used for a different spend', {
        currency: entry.currency,
        amount: -Number(entry.amount),
      });
    }
    return { currency, amount, balance: Number(entry.balance_after), replayed: true };
  }
}
