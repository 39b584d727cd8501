// GraphQL for what keeps paid purchases from getting lost: orders made before the store's purchase sheet,
// restoring purchases, the customer's kept and refused proofs, and the support tools (server key only).
import { ArrayMaxSize, IsOptional, Length, ValidateNested } from 'class-validator';
import { GraphQLJSONObject } from 'graphql-scalars';
import { Arg, Ctx, Field, FieldResolver, ID, InputType, Int, Mutation, ObjectType, Query, Resolver, Root, registerEnumType } from 'type-graphql';
import { assertCanAccess, assertServer } from '../auth/authenticator.js';
import { AppError, type ReceiptReason } from '../domain/errors.js';
import type { Environment, Ownership, Store } from '../domain/types.js';
import type { PurchaseProof } from '../stores/adapter.js';
import type { GraphQLContext } from './context.js';
import { toEntitlements } from './mappers.js';
import { googleProofOf } from './proofs.js';
import { AppleProofInput, Customer, Entitlement, EnvironmentEnum, GoogleProofInput, OwnershipEnum, ReceiptReasonEnum, StoreEnum } from './types.js';

export const OrderStatusEnum = { CREATED: 'CREATED', PAID: 'PAID', FULFILLED: 'FULFILLED', EXPIRED: 'EXPIRED', CANCELED: 'CANCELED' } as const;
registerEnumType(OrderStatusEnum, {
  name: 'OrderStatus',
  description: 'CREATED -> FULFILLED when its purchase is granted (PAID: paid, but its product is not in the catalog); EXPIRED or CANCELED when never paid.',
});

@ObjectType({ description: 'An intent recorded before the purchase; its token travels through the store so the purchase finds its customer.' })
export class Order {
  @Field(() => ID) id!: string;
  @Field(() => String) appUserId!: string;
  @Field(() => StoreEnum, { nullable: true }) store!: Store | null;
  @Field(() => String) productId!: string;
  @Field(() => String, {
    description: 'Give it to the store: Apple `Product.PurchaseOption.appAccountToken(UUID(uuidString:))`, Google `BillingFlowParams.setObfuscatedAccountId`.',
  })
  token!: string;
  @Field(() => OrderStatusEnum) status!: keyof typeof OrderStatusEnum;
  @Field(() => Date) createdAt!: Date;
  @Field(() => Date, { description: 'An unpaid order is EXPIRED after this; a late purchase carrying its token still fulfils it.' }) expiresAt!: Date;
  @Field(() => String, { nullable: true }) storeTransactionId!: string | null;
}

@InputType()
export class CreateOrderInput {
  @Field(() => String)
  @Length(1, 255)
  appUserId!: string;

  @Field(() => StoreEnum)
  store!: Store;

  @Field(() => String)
  @Length(1, 200)
  productId!: string;
}

@ObjectType({ description: 'A proof the service keeps: still being verified (the store could not answer yet), or refused with its reason.' })
export class KeptProof {
  @Field(() => ID) id!: string;
  @Field(() => StoreEnum) store!: Store;
  @Field(() => String, { nullable: true, description: 'Known before verification for Google proofs only.' }) productId!: string | null;
  @Field(() => String) reason!: string;
  @Field(() => String, { nullable: true }) message!: string | null;
  @Field(() => Int) attempts!: number;
  @Field(() => Date) submittedAt!: Date;
  @Field(() => Date, { nullable: true, description: 'When the next verification is due (pending proofs).' }) nextAttemptAt!: Date | null;
}

@InputType({ description: 'Restore: an Apple proof (its whole account history is re-verified), or the Google purchases the app holds.' })
export class RestorePurchasesInput {
  @Field(() => String)
  @Length(1, 255)
  appUserId!: string;

  @Field(() => StoreEnum)
  store!: Store;

  @Field(() => AppleProofInput, { nullable: true })
  @IsOptional()
  @ValidateNested()
  apple?: AppleProofInput | null;

  @Field(() => [GoogleProofInput], { nullable: true, description: 'Every purchase BillingClient.queryPurchasesAsync returned.' })
  @IsOptional()
  @ArrayMaxSize(100)
  @ValidateNested({ each: true })
  google?: GoogleProofInput[] | null;
}

@ObjectType()
export class ProofProblem {
  @Field(() => ReceiptReasonEnum) reason!: ReceiptReason;
  @Field(() => String) message!: string;
}

@ObjectType()
export class RestoreOutcome {
  @Field(() => [String], { description: 'Store transactions this customer now holds.' }) restoredTransactionIds!: string[];
  @Field(() => [String], { description: 'Of those, moved here from another customer (transfer policy).' }) transferredTransactionIds!: string[];
  @Field(() => [String], { description: 'Transactions that stay with another customer (transfer policy, consumables).' }) inUseTransactionIds!: string[];
  @Field(() => [ProofProblem], { description: 'Proofs kept to be verified later (store unavailable).' }) pending!: ProofProblem[];
  @Field(() => [ProofProblem]) rejected!: ProofProblem[];
  @Field(() => [Entitlement]) entitlements!: Entitlement[];
}

@ObjectType({ description: 'A stored purchase, as support sees it.' })
export class PurchaseRecord {
  @Field(() => StoreEnum) store!: Store;
  @Field(() => EnvironmentEnum) environment!: Environment;
  @Field(() => String) productId!: string;
  @Field(() => String, { nullable: true }) kind!: string | null;
  @Field(() => String) storeTransactionId!: string;
  @Field(() => String) originalTransactionId!: string;
  @Field(() => String, { nullable: true, description: 'Null while no customer has claimed it.' }) appUserId!: string | null;
  @Field(() => Date) purchasedAt!: Date;
  @Field(() => Date, { nullable: true }) expiresAt!: Date | null;
  @Field(() => Date, { nullable: true }) revokedAt!: Date | null;
  @Field(() => String, { nullable: true }) revocationReason!: string | null;
  @Field(() => OwnershipEnum) ownership!: Ownership;
  @Field(() => Int) quantity!: number;
}

@ObjectType()
export class PurchaseLookupResult {
  @Field(() => [PurchaseRecord]) purchases!: PurchaseRecord[];
  @Field(() => [String], { description: 'Transactions the store lists for the order that were never submitted here.' }) unrecordedTransactionIds!: string[];
}

@ObjectType()
export class CustomerEvent {
  @Field(() => ID) id!: string;
  @Field(() => String) type!: string;
  @Field(() => Date) occurredAt!: Date;
  @Field(() => Date) recordedAt!: Date;
  @Field(() => String, { nullable: true }) store!: string | null;
  @Field(() => String, { nullable: true }) environment!: string | null;
  @Field(() => String, { nullable: true }) productId!: string | null;
  @Field(() => String, { nullable: true }) transactionId!: string | null;
  @Field(() => String, { nullable: true }) originalTransactionId!: string | null;
  @Field(() => GraphQLJSONObject) data!: Record<string, unknown>;
}

@ObjectType()
export class PromotionalEntitlement {
  @Field(() => ID) id!: string;
  @Field(() => String) entitlement!: string;
  @Field(() => Date) startsAt!: Date;
  @Field(() => Date, { nullable: true, description: 'Null: until revoked.' }) expiresAt!: Date | null;
  @Field(() => String) reason!: string;
  @Field(() => Date, { nullable: true }) revokedAt!: Date | null;
}

@InputType()
export class GrantPromotionalInput {
  @Field(() => String)
  @Length(1, 255)
  appUserId!: string;

  @Field(() => String)
  @Length(1, 64)
  entitlement!: string;

  @Field(() => Date, { nullable: true, description: 'Null: until revoked.' })
  @IsOptional()
  expiresAt?: Date | null;

  @Field(() => String, { description: 'Why, for the audit trail (recorded in the PROMOTIONAL_GRANT event).' })
  @Length(1, 500)
  reason!: string;
}

@InputType()
export class RevokePromotionalInput {
  @Field(() => String)
  @Length(1, 255)
  appUserId!: string;

  @Field(() => String)
  @Length(1, 64)
  entitlement!: string;

  @Field(() => String)
  @Length(1, 500)
  reason!: string;
}

@Resolver()
export class OrderResolver {
  @Mutation(() => Order, { description: 'Record the intent to buy before opening the store; pass `token` to the store with the purchase.' })
  async createOrder(@Arg('input', () => CreateOrderInput) input: CreateOrderInput, @Ctx() ctx: GraphQLContext): Promise<Order> {
    assertCanAccess(ctx.principal, input.appUserId);
    return Object.assign(new Order(), await ctx.services.orders.create(input.appUserId, input.store, input.productId, ctx.now));
  }

  @Mutation(() => Order, { description: 'The user left the purchase sheet without buying.' })
  async cancelOrder(@Arg('orderId', () => ID) orderId: string, @Ctx() ctx: GraphQLContext): Promise<Order> {
    const order = await ctx.services.orders.get(orderId);
    if (!order) throw new AppError('NOT_FOUND', `no order ${orderId}`);
    assertCanAccess(ctx.principal, order.appUserId);
    return Object.assign(new Order(), await ctx.services.orders.cancel(orderId));
  }

  @Query(() => Order, { nullable: true })
  async order(@Arg('orderId', () => ID) orderId: string, @Ctx() ctx: GraphQLContext): Promise<Order | null> {
    const order = await ctx.services.orders.get(orderId);
    if (!order) return null;
    assertCanAccess(ctx.principal, order.appUserId);
    return Object.assign(new Order(), order);
  }

  @Mutation(() => RestoreOutcome, {
    description: 'Restore purchases: re-verify everything the proof covers and attach it to this customer (under the transfer policy).',
  })
  async restorePurchases(@Arg('input', () => RestorePurchasesInput) input: RestorePurchasesInput, @Ctx() ctx: GraphQLContext): Promise<RestoreOutcome> {
    assertCanAccess(ctx.principal, input.appUserId);
    const result = await ctx.services.receipts.restore(input.appUserId, restoreProofs(input), ctx.now);
    const snapshot = await ctx.services.reader.read(input.appUserId);
    return Object.assign(new RestoreOutcome(), { ...result, entitlements: toEntitlements(snapshot?.sources ?? [], ctx.now) });
  }
}

function restoreProofs(input: RestorePurchasesInput): PurchaseProof[] {
  if (input.store === 'APP_STORE') {
    const a = input.apple;
    if (!a || (!a.signedTransaction && !a.appReceipt)) throw new AppError('BAD_USER_INPUT', 'restoring App Store purchases needs apple.signedTransaction or apple.appReceipt');
    return [{ store: 'APP_STORE', signedTransaction: a.signedTransaction ?? null, appReceipt: a.appReceipt ?? null, transactionId: null }];
  }
  if (!input.google?.length) throw new AppError('BAD_USER_INPUT', 'restoring Google Play purchases needs the purchases the app holds (google)');
  return input.google.map(googleProofOf);
}

@Resolver(() => Customer)
export class CustomerRecoveryResolver {
  @FieldResolver(() => [KeptProof], { description: 'Purchases submitted while the store could not answer: kept and verified again until it does.' })
  async pendingPurchases(@Root() customer: Customer, @Ctx() ctx: GraphQLContext): Promise<KeptProof[]> {
    return (await ctx.services.pendingProofs.ofCustomer(customer.appUserId, 'PENDING')).map((p) => Object.assign(new KeptProof(), p));
  }

  @FieldResolver(() => [KeptProof], { description: 'Proofs the store definitively refused, with the reason (newest first, up to 50).' })
  async rejectedProofs(@Root() customer: Customer, @Ctx() ctx: GraphQLContext): Promise<KeptProof[]> {
    return (await ctx.services.pendingProofs.ofCustomer(customer.appUserId, 'REJECTED')).map((p) => Object.assign(new KeptProof(), p));
  }

  @FieldResolver(() => [Order], { description: 'Orders, newest first (up to 50).' })
  async orders(@Root() customer: Customer, @Ctx() ctx: GraphQLContext): Promise<Order[]> {
    return (await ctx.services.orders.ofCustomer(customer.appUserId)).map((o) => Object.assign(new Order(), o));
  }

  @FieldResolver(() => [PromotionalEntitlement])
  async promotionalEntitlements(@Root() customer: Customer, @Ctx() ctx: GraphQLContext): Promise<PromotionalEntitlement[]> {
    return (await ctx.services.support.promotionsOf(customer.appUserId)).map((p) => Object.assign(new PromotionalEntitlement(), p));
  }
}

@Resolver()
export class SupportResolver {
  @Query(() => PurchaseLookupResult, {
    description: 'Support (server key): find purchases by store transaction id, Google order id (GPA.…) or the order id on Apple’s e-mailed receipt.',
  })
  async purchaseLookup(
    @Arg('storeTransactionId', () => String, { nullable: true }) storeTransactionId: string | null,
    @Arg('googleOrderId', () => String, { nullable: true }) googleOrderId: string | null,
    @Arg('appleOrderId', () => String, { nullable: true }) appleOrderId: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<PurchaseLookupResult> {
    assertServer(ctx.principal);
    const found = await ctx.services.support.lookUp({ storeTransactionId, googleOrderId, appleOrderId });
    return Object.assign(new PurchaseLookupResult(), { ...found, purchases: found.purchases.map((p) => Object.assign(new PurchaseRecord(), p)) });
  }

  @Query(() => [CustomerEvent], { description: "Support (server key): a customer's event history, newest first." })
  async customerEvents(
    @Arg('appUserId', () => String) appUserId: string,
    @Arg('limit', () => Int, { defaultValue: 100 }) limit: number,
    @Arg('before', () => String, { nullable: true, description: 'An event id: return older events.' }) before: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<CustomerEvent[]> {
    assertServer(ctx.principal);
    if (limit < 1 || limit > 1000) throw new AppError('BAD_USER_INPUT', 'limit must be between 1 and 1000');
    return (await ctx.services.support.events(appUserId, limit, before)).map((e) => Object.assign(new CustomerEvent(), e));
  }

  @Mutation(() => PromotionalEntitlement, { description: 'Support (server key): grant an entitlement, e.g. as goodwill, until expiresAt or revoked.' })
  async grantPromotionalEntitlement(@Arg('input', () => GrantPromotionalInput) input: GrantPromotionalInput, @Ctx() ctx: GraphQLContext): Promise<PromotionalEntitlement> {
    assertServer(ctx.principal);
    const granted = await ctx.services.support.grantPromotional(input.appUserId, input.entitlement, input.expiresAt ?? null, input.reason, ctx.now);
    return Object.assign(new PromotionalEntitlement(), granted);
  }

  @Mutation(() => Int, { description: 'Support (server key): end the active promotional grants of an entitlement. Returns how many ended.' })
  async revokePromotionalEntitlement(@Arg('input', () => RevokePromotionalInput) input: RevokePromotionalInput, @Ctx() ctx: GraphQLContext): Promise<number> {
    assertServer(ctx.principal);
    return ctx.services.support.revokePromotional(input.appUserId, input.entitlement, input.reason, ctx.now);
  }
}

export const RECOVERY_RESOLVERS = [OrderResolver, CustomerRecoveryResolver, SupportResolver] as const;
