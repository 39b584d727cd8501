// Normalized purchases are stored as JSON (dates as ISO strings) in purchase_observation.snapshot.
import { createHash } from 'node:crypto';
import type { NormalizedPurchase } from '../domain/types.js';

const DATE_FIELDS = ['purchasedAt', 'expiresAt', 'gracePeriodExpiresAt', 'autoResumeAt', 'revokedAt', 'observedAt'] as const;

export function encodeSnapshot(p: NormalizedPurchase): Record<string, unknown> {
  const out: Record<string, unknown> = { ...p };
  for (const f of DATE_FIELDS) out[f] = p[f] ? (p[f] as Date).toISOString() : null;
  return out;
}

export function decodeSnapshot(json: Record<string, unknown>): NormalizedPurchase {
  const out: Record<string, unknown> = { ...json };
  for (const f of DATE_FIELDS) out[f] = json[f] ? new Date(json[f] as string) : null;
  return out as unknown as NormalizedPurchase;
}

/** The statement's facts apart from when it was made and its raw bytes. */
export function factsFingerprint(p: NormalizedPurchase): string {
  const { raw: _raw, observedAt: _at, ...facts } = encodeSnapshot(p);
  return createHash('sha256').update(canonicalJson(facts)).digest('hex');
}

/** Identifies a statement by its normalized facts: the same facts with other raw bytes are one observation. */
export function fingerprint(p: NormalizedPurchase): string {
  const { raw: _raw, ...facts } = encodeSnapshot(p);
  return createHash('sha256').update(canonicalJson(facts)).digest('hex');
}

function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
}

/** Timestamps from raw SQL come back as strings; null stays null. */
export function toDate(v: unknown): Date | null {
  if (v === null || v === undefined) return null;
  return v instanceof Date ? v : new Date(String(v));
}
