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
  const isActive = ENTITLING_STATES.has(s.state) && end !== null && end.getTime() > now.getTime();
  return Object.assign(new Subscription(), { ...s, isActive, entitlements: [...entitlements] });
}
