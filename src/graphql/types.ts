// GraphQL types: the API's shape, kept apart from the database entities.
import { IsOptional, Length, Matches, Max, MaxLength, Min } from 'class-validator';
import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { RECEIPT_REASONS, RECEIPT_STATUSES, type ReceiptReason, type ReceiptStatus } from '../domain/errors.js';
import {
  ENTITLEMENT_STORES,
  ENVIRONMENTS,
  OWNERSHIPS,
  PRODUCT_KINDS,
  STORES,
  SUBSCRIPTION_STATES,
  type EntitlementStore,
  type Environment,
  type Ownership,
  type ProductKind,
  type Store,
  type SubscriptionState,
} from '../domain/types.js';

const enumOf = <T extends string>(values: readonly T[]) => Object.fromEntries(values.map((v) => [v, v])) as { [K in T]: K };

export const StoreEnum = enumOf(STORES);
export const EnvironmentEnum = enumOf(ENVIRONMENTS);
export const ProductKindEnum = enumOf(PRODUCT_KINDS);
export const SubscriptionStateEnum = enumOf(SUBSCRIPTION_STATES);
export const ReceiptStatusEnum = enumOf(RECEIPT_STATUSES);
export const ReceiptReasonEnum = enumOf(RECEIPT_REASONS);
export const OwnershipEnum = enumOf(OWNERSHIPS);
export const EntitlementStoreEnum = enumOf(ENTITLEMENT_STORES);

registerEnumType(StoreEnum, { name: 'Store', description: 'APP_STORE (Apple) or PLAY_STORE (Google).' });
registerEnumType(EnvironmentEnum, { name: 'Environment', description: 'PRODUCTION, or SANDBOX for test purchases (App Review, testers).' });
registerEnumType(ProductKindEnum, { name: 'ProductKind' });
registerEnumType(EntitlementStoreEnum, { name: 'EntitlementStore', description: 'APP_STORE, PLAY_STORE, or PROMOTIONAL (granted by support).' });
registerEnumType(OwnershipEnum, { name: 'Ownership', description: 'PURCHASED by the customer, or FAMILY_SHARED with them by a family member (Apple).' });
registerEnumType(SubscriptionStateEnum, {
  name: 'SubscriptionState',
  description: 'ACTIVE, CANCELED (auto-renew off, not yet expired) and GRACE (billing retry, access kept) entitle; the others do not.',
});
registerEnumType(ReceiptStatusEnum, { name: 'ReceiptStatus' });
registerEnumType(ReceiptReasonEnum, { name: 'ReceiptReason' });

@ObjectType({ description: 'What a customer is entitled to, per entitlement identifier, at the time of the query.' })
export class Entitlement {
  @Field(() => String) identifier!: string;
  @Field(() => Boolean, { description: 'The one field an app needs: unlock the feature or not.' }) isActive!: boolean;
  @Field(() => SubscriptionStateEnum) state!: SubscriptionState;
  @Field(() => Date, { nullable: true, description: 'Null for lifetime (non-consumable) entitlements.' }) expiresAt!: Date | null;
  @Field(() => Date, { nullable: true }) gracePeriodExpiresAt!: Date | null;
  @Field(() => Boolean) willRenew!: boolean;
  @Field(() => String, { description: 'The store product that grants it ("promotional" for a promotional grant).' }) productId!: string;
  @Field(() => EntitlementStoreEnum) store!: EntitlementStore;
  @Field(() => Boolean) isSandbox!: boolean;
  @Field(() => OwnershipEnum, { description: 'FAMILY_SHARED: shared by a family member through Apple Family Sharing.' }) ownership!: Ownership;
  @Field(() => Date) purchasedAt!: Date;
}

@ObjectType()
export class Subscription {
  @Field(() => ID) id!: string;
  @Field(() => StoreEnum) store!: Store;
  @Field(() => EnvironmentEnum) environment!: Environment;
  @Field(() => String) productId!: string;
  @Field(() => SubscriptionStateEnum) state!: SubscriptionState;
  @Field(() => Boolean) isActive!: boolean;
  @Field(() => Date) originalPurchasedAt!: Date;
  @Field(() => Date) currentPeriodStartsAt!: Date;
  @Field(() => Date, { nullable: true }) expiresAt!: Date | null;
  @Field(() => Date, { nullable: true }) gracePeriodExpiresAt!: Date | null;
  @Field(() => Date, { nullable: true }) autoResumeAt!: Date | null;
  @Field(() => Boolean) willRenew!: boolean;
  @Field(() => Date, { nullable: true }) revokedAt!: Date | null;
  @Field(() => String, { nullable: true }) expirationReason!: string | null;
  @Field(() => OwnershipEnum) ownership!: Ownership;
  @Field(() => String, { description: 'Apple originalTransactionId; Google: the first purchase token of the chain.' })
  originalTransactionId!: string;
  @Field(() => String) latestTransactionId!: string;
  @Field(() => [String]) entitlements!: string[];
}

@ObjectType({ description: 'A verified one-time purchase: non-consumable, non-renewing subscription or consumable.' })
export class NonSubscriptionPurchase {
  @Field(() => ID) id!: string;
  @Field(() => StoreEnum) store!: Store;
  @Field(() => EnvironmentEnum) environment!: Environment;
  @Field(() => String) productId!: string;
  @Field(() => ProductKindEnum) kind!: ProductKind;
  @Field(() => String) storeTransactionId!: string;
  @Field(() => Date) purchasedAt!: Date;
  @Field(() => Date, { nullable: true }) expiresAt!: Date | null;
  @Field(() => Date, { nullable: true }) revokedAt!: Date | null;
  @Field(() => Int) quantity!: number;
  @Field(() => OwnershipEnum) ownership!: Ownership;
}

@ObjectType()
export class CreditBalance {
  @Field(() => String) currency!: string;
  @Field(() => Int) balance!: number;
}

@ObjectType()
export class Customer {
  @Field(() => String) appUserId!: string;
  @Field(() => Date, { nullable: true, description: 'Null until the first purchase is recorded.' }) firstSeenAt!: Date | null;
  @Field(() => [Entitlement], { complexity: ({ childComplexity }) => 1 + 5 * childComplexity }) entitlements!: Entitlement[];
  @Field(() => [Subscription]) subscriptions!: Subscription[];
  @Field(() => [NonSubscriptionPurchase]) nonSubscriptionPurchases!: NonSubscriptionPurchase[];
  @Field(() => [CreditBalance]) creditBalances!: CreditBalance[];
  /** Internal: set by the resolver, not exposed. */
  customerId!: string | null;
}

@ObjectType()
export class CreditAmount {
  @Field(() => String) currency!: string;
  @Field(() => Int) amount!: number;
}

@ObjectType()
export class Product {
  @Field(() => StoreEnum) store!: Store;
  @Field(() => String) productId!: string;
  @Field(() => ProductKindEnum) kind!: ProductKind;
  @Field(() => [String]) entitlements!: string[];
  @Field(() => Int, { nullable: true }) durationDays!: number | null;
  @Field(() => [CreditAmount]) credits!: CreditAmount[];
  @Field(() => String, { nullable: true }) displayName!: string | null;
}

@InputType({ description: 'Apple proof: a StoreKit 2 signed transaction, or a legacy app receipt.' })
export class AppleProofInput {
  @Field(() => String, { nullable: true, description: 'StoreKit 2 Transaction.jwsRepresentation.' })
  @IsOptional()
  @MaxLength(65_536)
  signedTransaction?: string | null;

  @Field(() => String, { nullable: true, description: 'Legacy base64 app receipt (Bundle.main.appStoreReceiptURL).' })
  @IsOptional()
  @MaxLength(4_000_000)
  appReceipt?: string | null;

  @Field(() => String, { nullable: true, description: 'With a legacy receipt: the transaction the app just bought.' })
  @IsOptional()
  @MaxLength(64)
  transactionId?: string | null;
}

@InputType({ description: 'Google Play proof: the purchase token and product id, optionally the signed purchase JSON.' })
export class GoogleProofInput {
  @Field(() => String, { nullable: true, description: 'The app package name; required when several apps are configured.' })
  @IsOptional()
  @MaxLength(255)
  packageName?: string | null;

  @Field(() => String)
  @Length(1, 200)
  productId!: string;

  @Field(() => String)
  @Length(1, 512)
  purchaseToken!: string;

  @Field(() => String, { nullable: true, description: 'Purchase.getOriginalJson(), byte for byte.' })
  @IsOptional()
  @MaxLength(65_536)
  originalJson?: string | null;

  @Field(() => String, { nullable: true, description: 'Purchase.getSignature() (base64).' })
  @IsOptional()
  @MaxLength(4096)
  signature?: string | null;
}

@InputType()
export class SubmitReceiptInput {
  @Field(() => String)
  @Length(1, 255)
  appUserId!: string;

  @Field(() => StoreEnum)
  store!: Store;

  @Field(() => AppleProofInput, { nullable: true })
  @IsOptional()
  apple?: AppleProofInput | null;

  @Field(() => GoogleProofInput, { nullable: true })
  @IsOptional()
  google?: GoogleProofInput | null;

  @Field(() => String, { nullable: true, description: 'The id returned by createOrder, when the app made one.' })
  @IsOptional()
  @MaxLength(64)
  orderId?: string | null;
}

@ObjectType()
export class ReceiptOutcome {
  @Field(() => ReceiptStatusEnum) status!: ReceiptStatus;
  @Field(() => ReceiptReasonEnum) reason!: ReceiptReason;
  @Field(() => String) message!: string;
  @Field(() => [String], { description: 'Store transaction ids the proof covered.' }) transactionIds!: string[];
  @Field(() => [Entitlement]) entitlements!: Entitlement[];
}

@InputType()
export class SpendCreditsInput {
  @Field(() => String)
  @Length(1, 255)
  appUserId!: string;

  @Field(() => String)
  @Matches(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/)
  currency!: string;

  @Field(() => Int)
  @Min(1)
  @Max(1_000_000_000)
  amount!: number;

  @Field(() => String, { description: 'Unique per spend: a retry with the same key spends once.' })
  @Length(1, 200)
  idempotencyKey!: string;
}

@ObjectType()
export class SpendCreditsResult {
  @Field(() => String) currency!: string;
  @Field(() => Int) amount!: number;
  @Field(() => Int, { description: 'Balance after the spend.' }) balance!: number;
  @Field(() => Boolean, { description: 'True when this idempotencyKey had already been spent: nothing new was deducted.' })
  replayed!: boolean;
}
