// Domain views -> GraphQL objects.
import { resolveEntitlements, type EntitlementSource } from '../domain/engine.js';
import { ENTITLING_STATES } from '../domain/types.js';
import type { SubscriptionView } from '../services/customer-queries.js';
import { Entitlement, Subscription } from './types.js';

export function toEntitlements(sources: readonly EntitlementSource[], now: Date): Entitlement[] {
  return resolveEntitlements(sources, now).map((v) => Object.assign(new Entitlement(), v));
}

export function toSubscription(s: SubscriptionView, entitlements: readonly string[], now: Date): Subscription {
  const end = s.state === 'GRACE' ? (s.gracePeriodExpiresAt ?? s.expiresAt) : s.expiresAt;
  const entitling = ENTITLING_STATES.has(s.state);
  const isActive = entitling && (end === null || end.getTime() > now.getTime());
  // Same view as the entitlements: an entitling state whose end has passed shows EXPIRED until re-validated.
  const state = entitling && !isActive ? 'EXPIRED' : s.state;
  return Object.assign(new Subscription(), { ...s, state, isActive, willRenew: state === 'EXPIRED' || state === 'REVOKED' ? false : s.willRenew, entitlements: [...entitlements] });
}
