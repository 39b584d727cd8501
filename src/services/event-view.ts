// An event as callers see it (the support event history, webhook payloads): one mapping from the event table.
import { toDate } from '../persistence/snapshot-codec.js';

type Row = Record<string, unknown>;

/** The stable public id of an event: the same on every delivery attempt, in the delivery log and in the history. */
export const publicEventId = (eventId: string | number | bigint): string => `evt_${eventId}`;

export interface EventView {
  id: string;
  type: string;
  occurredAt: Date;
  recordedAt: Date;
  store: string | null;
  environment: string | null;
  productId: string | null;
  transactionId: string | null;
  originalTransactionId: string | null;
  data: Record<string, unknown>;
}

/** From a row with the event table's columns (id, type, occurred_at, recorded_at, store, ..., lineage_id, data). */
export function eventViewOf(r: Row): EventView {
  return {
    id: publicEventId(r.id as string | number),
    type: r.type as string,
    occurredAt: toDate(r.occurred_at)!,
    recordedAt: toDate(r.recorded_at)!,
    store: (r.store as string | null) ?? null,
    environment: (r.environment as string | null) ?? null,
    productId: (r.product_id as string | null) ?? null,
    transactionId: (r.store_transaction_id as string | null) ?? null,
    originalTransactionId: (r.lineage_id as string | null) ?? null,
    data: ((typeof r.data === 'string' ? JSON.parse(r.data) : r.data) ?? {}) as Record<string, unknown>,
  };
}
