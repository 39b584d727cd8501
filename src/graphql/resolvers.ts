// Thin resolvers: check who may ask, translate arguments, delegate to services.
import { Arg, Ctx, FieldResolver, Mutation, Query, Resolver, Root } from 'type-graphql';
import { assertCanAccess } from '../auth/authenticator.js';
import { AppError } from '../domain/errors.js';
import type { PurchaseProof } from '../stores/adapter.js';
import type { GraphQLContext } from './context.js';
import { toEntitlements, toSubscription } from './mappers.js';
import { googleProofOf } from './proofs.js';
import { RECOVERY_RESOLVERS } from './purchase-recovery.js';
import { WEBHOOK_RESOLVERS } from './webhooks.js';
import { SCHEDULER_RESOLVERS } from './scheduler.js';
import { ANALYTICS_RESOLVERS } from './analytics.js';
import {
  CreditBalance,
  Customer,
  Entitlement,
  NonSubscriptionPurchase,
  Product,
  ReceiptOutcome,
  SpendCreditsInput,
  SpendCreditsResult,
  SubmitReceiptInput,
  Subscription,
} from './types.js';

/** A list field costs its children once per item it may typically hold. */
const listCost =
  (items: number) =>
  ({ childComplexity }: { childComplexity: number }) =>
    1 + items * childComplexity;

@Resolver(() => Customer)
export class CustomerResolver {
  @Query(() => Customer, { description: "A customer's entitlements, subscriptions, purchases and credit balances." })
  async customer(@Arg('appUserId', () => String) appUserId: string, @Ctx() ctx: GraphQLContext): Promise<Customer> {
    assertCanAccess(ctx.principal, appUserId);
    const snapshot = await ctx.services.reader.read(appUserId);
    return Object.assign(new Customer(), {
      appUserId,
      customerId: snapshot?.customerId ?? null,
      entitlements: toEntitlements(snapshot?.sources ?? [], ctx.now),
    });
  }

  @Query(() => [Entitlement], { description: 'The common check: what this user may use right now.' })
  async entitlements(@Arg('appUserId', () => String) appUserId: string, @Ctx() ctx: GraphQLContext): Promise<Entitlement[]> {
    assertCanAccess(ctx.principal, appUserId);
    const snapshot = await ctx.services.reader.read(appUserId);
    return toEntitlements(snapshot?.sources ?? [], ctx.now);
  }

  @FieldResolver(() => Date, { nullable: true })
  async firstSeenAt(@Root() customer: Customer, @Ctx() ctx: GraphQLContext): Promise<Date | null> {
    return customer.customerId ? ctx.services.queries.firstSeenAt(customer.customerId) : null;
  }

  @FieldResolver(() => [Subscription], { complexity: listCost(10) })
  async subscriptions(@Root() customer: Customer, @Ctx() ctx: GraphQLContext): Promise<Subscription[]> {
    if (!customer.customerId) return [];
    const subs = await ctx.services.queries.subscriptions(customer.customerId);
    return subs.map((s) => toSubscription(s, ctx.services.catalog.find(s.store, s.productId)?.entitlements ?? [], ctx.now));
  }

  @FieldResolver(() => [NonSubscriptionPurchase], { complexity: listCost(10) })
  async nonSubscriptionPurchases(@Root() customer: Customer, @Ctx() ctx: GraphQLContext): Promise<NonSubscriptionPurchase[]> {
    if (!customer.customerId) return [];
    const purchases = await ctx.services.queries.oneTimePurchases(customer.customerId);
    return purchases.map((p) => Object.assign(new NonSubscriptionPurchase(), p));
  }

  @FieldResolver(() => [CreditBalance], { complexity: listCost(5) })
  async creditBalances(@Root() customer: Customer, @Ctx() ctx: GraphQLContext): Promise<CreditBalance[]> {
    if (!customer.customerId) return [];
    const balances = await ctx.services.queries.balances(customer.customerId);
    return balances.map((b) => Object.assign(new CreditBalance(), b));
  }
}

@Resolver()
export class CatalogResolver {
  @Query(() => [Product], { description: 'The catalog: every store product, its kind and what it unlocks.' })
  products(@Ctx() ctx: GraphQLContext): Product[] {
    return ctx.services.catalog.products.map((p) =>
      Object.assign(new Product(), {
        ...p,
        entitlements: [...p.entitlements],
        credits: Object.entries(p.credits).map(([currency, amount]) => ({ currency, amount })),
      }),
    );
  }
}

@Resolver()
export class PurchaseResolver {
  @Mutation(() => ReceiptOutcome, { description: "Verify a store's purchase proof with the store and record it. Idempotent." })
  async submitReceipt(@Arg('input', () => SubmitReceiptInput) input: SubmitReceiptInput, @Ctx() ctx: GraphQLContext): Promise<ReceiptOutcome> {
    assertCanAccess(ctx.principal, input.appUserId);
    const result = await ctx.services.receipts.submit({
      appUserId: input.appUserId,
      proof: toProof(input),
      orderId: input.orderId ?? null,
      now: ctx.now,
    });
    const snapshot = await ctx.services.reader.read(input.appUserId);
    return Object.assign(new ReceiptOutcome(), { ...result, entitlements: toEntitlements(snapshot?.sources ?? [], ctx.now) });
  }

  @Mutation(() => SpendCreditsResult, { description: 'Spend consumable credits. Never below zero; once per idempotencyKey.' })
  async spendCredits(@Arg('input', () => SpendCreditsInput) input: SpendCreditsInput, @Ctx() ctx: GraphQLContext): Promise<SpendCreditsResult> {
    assertCanAccess(ctx.principal, input.appUserId);
    const result = await ctx.services.credits.spend(input.appUserId, input.currency, input.amount, input.idempotencyKey, ctx.now);
    return Object.assign(new SpendCreditsResult(), result);
  }
}

function toProof(input: SubmitReceiptInput): PurchaseProof {
  if (input.store === 'APP_STORE') {
    const a = input.apple;
    if (!a || (!a.signedTransaction && !a.appReceipt)) {
      throw new AppError('BAD_USER_INPUT', 'an APP_STORE proof needs apple.signedTransaction or apple.appReceipt');
    }
    if (input.google) throw new AppError('BAD_USER_INPUT', 'an APP_STORE proof takes no google input');
    return { store: 'APP_STORE', signedTransaction: a.signedTransaction ?? null, appReceipt: a.appReceipt ?? null, transactionId: a.transactionId ?? null };
  }
  const g = input.google;
  if (!g) throw new AppError('BAD_USER_INPUT', 'a PLAY_STORE proof needs google.productId and google.purchaseToken');
  if (input.apple) throw new AppError('BAD_USER_INPUT', 'a PLAY_STORE proof takes no apple input');
  return googleProofOf(g);
}

export const RESOLVERS = [CustomerResolver, CatalogResolver, PurchaseResolver, ...RECOVERY_RESOLVERS, ...WEBHOOK_RESOLVERS, ...SCHEDULER_RESOLVERS, ...ANALYTICS_RESOLVERS] as const;
