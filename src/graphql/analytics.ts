// GraphQL for subscription analytics (server API key only): thin resolvers over AnalyticsService.
import { Arg, Ctx, Field, Float, InputType, Int, ObjectType, Query, Resolver, registerEnumType } from 'type-graphql';
import { assertServer } from '../auth/authenticator.js';
import { ANALYTICS_INTERVALS, MAX_ANALYTICS_PERIODS, type AnalyticsInterval } from '../domain/analytics.js';
import type { Environment, Store, SubscriptionState } from '../domain/types.js';
import { MAX_RETENTION_PERIODS, type AnalyticsFilter as Filter } from '../services/analytics.js';
import type { GraphQLContext } from './context.js';
import { EnvironmentEnum, StoreEnum, SubscriptionStateEnum } from './types.js';

export const AnalyticsIntervalEnum = Object.fromEntries(ANALYTICS_INTERVALS.map((s) => [s, s])) as { [K in AnalyticsInterval]: K };
registerEnumType(AnalyticsIntervalEnum, {
  name: 'AnalyticsInterval',
  description: 'Calendar periods in UTC: DAY, WEEK (ISO weeks, from Monday) or MONTH.',
});

@InputType({ description: 'Which subscriptions to count. Every field is optional; sandbox purchases are left out unless asked for.' })
export class AnalyticsFilter {
  @Field(() => StoreEnum, { nullable: true }) store?: Store | null;
  @Field(() => String, { nullable: true, description: 'A store product id from the catalog.' }) productId?: string | null;
  @Field(() => String, { nullable: true, description: 'An entitlement: every catalog product that unlocks it.' }) entitlement?: string | null;
  @Field(() => EnvironmentEnum, { nullable: true, description: 'PRODUCTION (default) or SANDBOX.' }) environment?: Environment | null;
}

@ObjectType()
export class SubscriptionStateCount {
  @Field(() => SubscriptionStateEnum) state!: SubscriptionState;
  @Field(() => Int) count!: number;
}

@ObjectType({ description: 'How many subscriptions were in each state at one instant.' })
export class SubscriptionStateCounts {
  @Field(() => Date) at!: Date;
  @Field(() => Int, { description: 'Subscriptions bought by then.' }) total!: number;
  @Field(() => [SubscriptionStateCount], { description: 'Every state, zeros included.' }) counts!: SubscriptionStateCount[];
}

@ObjectType({ description: 'How subscriptions moved during one period.' })
export class ChurnPeriod {
  @Field(() => Date) startsAt!: Date;
  @Field(() => Date) endsAt!: Date;
  @Field(() => Int, { description: 'Entitled (ACTIVE, CANCELED, GRACE) as the period began.' }) activeAtStart!: number;
  @Field(() => Int, { description: 'First purchases.' }) new!: number;
  @Field(() => Int) renewed!: number;
  @Field(() => Int, { description: 'Subscriptions that came back after a lapse.' }) reactivated!: number;
  @Field(() => Int, { description: 'Subscriptions that ended (expired or were revoked): voluntary + involuntary + revoked + other.' }) churned!: number;
  @Field(() => Int, { description: 'Canceled, then expired (or the store said the customer chose to leave, or refused a price increase).' })
  voluntaryChurn!: number;
  @Field(() => Int, { description: 'Expired after a billing failure.' }) involuntaryChurn!: number;
  @Field(() => Int, { description: 'Ended by a refund or revocation of the current period.' }) revokedChurn!: number;
  @Field(() => Int, { description: 'Ended for another or an unknown reason.' }) otherChurn!: number;
  @Field(() => Int, { description: 'Refunds of subscription transactions.' }) refunds!: number;
  @Field(() => Float, { nullable: true, description: 'churned / (activeAtStart + new + reactivated): of the subscriptions entitled at some time in the period, the share that churned in it; null when there were none.' }) churnRate!: number | null;
  @Field(() => Int, { description: 'Entitled as the period ended.' }) activeAtEnd!: number;
}

@ObjectType()
export class RetentionPoint {
  @Field(() => Int, { description: 'Periods after the first purchase.' }) k!: number;
  @Field(() => Int, { description: 'Cohort members whose first purchase was k periods ago or more by now.' }) eligible!: number;
  @Field(() => Int, { description: 'Of those, entitled exactly k periods after their first purchase.' }) retained!: number;
  @Field(() => Float, { nullable: true, description: 'retained / eligible.' }) share!: number | null;
}

@ObjectType({ description: 'Subscriptions whose first purchase fell in one period.' })
export class RetentionCohort {
  @Field(() => Date) startsAt!: Date;
  @Field(() => Int) size!: number;
  @Field(() => [RetentionPoint]) periods!: RetentionPoint[];
}

@ObjectType()
export class ActiveSubscriptions {
  @Field(() => Date) at!: Date;
  @Field(() => Int, { description: 'Entitled subscriptions: active + canceled + gracePeriod.' }) total!: number;
  @Field(() => Int, { description: 'Will renew.' }) active!: number;
  @Field(() => Int, { description: 'Auto-renew off, running to the end of the period.' }) canceled!: number;
  @Field(() => Int, { description: 'Billing failed, the store retries, access kept.' }) gracePeriod!: number;
  @Field(() => Int, { description: 'Of the total, in a free trial.' }) trials!: number;
}

@ObjectType({ description: 'An amount in one currency, in millionths of its unit.' })
export class CurrencyAmount {
  @Field(() => String, { description: 'ISO 4217 code as the store reported it.' }) currency!: string;
  @Field(() => Float, { description: 'Millionths of the currency unit (9.99 = 9990000).' }) amountMicros!: number;
  @Field(() => String, { description: 'The amount as a decimal string, e.g. "1234.5".' }) amount!: string;
  @Field(() => Int, { description: 'Subscriptions (or refunds) it adds up.' }) subscriptions!: number;
}

@ObjectType({ description: 'Monthly recurring revenue per currency, from stored prices; never converted between currencies.' })
export class RecurringRevenue {
  @Field(() => Date) at!: Date;
  @Field(() => [CurrencyAmount]) currencies!: CurrencyAmount[];
  @Field(() => Int, { description: 'Paid subscriptions (ACTIVE or CANCELED) with a known price.' }) pricedSubscriptions!: number;
  @Field(() => Int, { description: 'Paid subscriptions whose price the store did not give: counted, not guessed.' }) unpricedSubscriptions!: number;
  @Field(() => Int, { description: 'In a free trial: 0 revenue.' }) trialSubscriptions!: number;
  @Field(() => Int, { description: 'In a grace period (not paid for now): left out of the revenue.' }) gracePeriodSubscriptions!: number;
}

@ObjectType()
export class BillingIssues {
  @Field(() => Date) at!: Date;
  @Field(() => Int, { description: 'Billing failed, access kept while the store retries.' }) gracePeriod!: number;
  @Field(() => Int, { description: 'Billing failed, access removed while the store retries (account hold, billing retry).' }) onHold!: number;
  @Field(() => Int) total!: number;
}

@ObjectType()
export class Refunds {
  @Field(() => Date) from!: Date;
  @Field(() => Date) to!: Date;
  @Field(() => Int, { description: 'Refunds of subscriptions and one-time purchases.' }) refunds!: number;
  @Field(() => Int, { description: 'Refunds the store reversed.' }) reversals!: number;
  @Field(() => Int) subscriptionRefunds!: number;
  @Field(() => Int) oneTimeRefunds!: number;
  @Field(() => Int, { description: 'Refunds of transactions whose price is not known.' }) unpricedRefunds!: number;
  @Field(() => [CurrencyAmount], { description: 'Refunded amounts per currency (the transactions\' stored prices).' }) amounts!: CurrencyAmount[];
}

@ObjectType({ description: 'Free trials started in a range and what became of them.' })
export class TrialConversions {
  @Field(() => Date) from!: Date;
  @Field(() => Date) to!: Date;
  @Field(() => Int) started!: number;
  @Field(() => Int, { description: 'Followed by a paid renewal.' }) converted!: number;
  @Field(() => Int, { description: 'Ended without one.' }) notConverted!: number;
  @Field(() => Int, { description: 'Still running.' }) inTrial!: number;
  @Field(() => Float, { nullable: true, description: 'converted / (converted + notConverted).' }) conversionRate!: number | null;
}

/** Millionths as an exact decimal string. */
export function microsToDecimal(micros: number): string {
  const sign = micros < 0 ? '-' : '';
  const abs = BigInt(Math.abs(Math.round(micros)));
  const units = abs / 1_000_000n;
  const fraction = (abs % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  return `${sign}${units}${fraction ? `.${fraction}` : ''}`;
}

const amount = (a: { currency: string; amountMicros: number; subscriptions: number }): CurrencyAmount =>
  Object.assign(new CurrencyAmount(), { ...a, amount: microsToDecimal(a.amountMicros) });

const INTERVAL_ARG = { description: `DAY, WEEK or MONTH; at most ${MAX_ANALYTICS_PERIODS} periods.` };

@Resolver()
export class AnalyticsResolver {
  @Query(() => SubscriptionStateCounts, { description: 'Subscriptions in each state at an instant (default: now). Server API key only.' })
  async subscriptionStateCounts(
    @Arg('at', () => Date, { nullable: true }) at: Date | null | undefined,
    @Arg('filter', () => AnalyticsFilter, { nullable: true }) filter: Filter | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<SubscriptionStateCounts> {
    assertServer(ctx.principal);
    const r = await ctx.services.analytics.stateCounts(at ?? ctx.now, ctx.now, filter);
    return Object.assign(new SubscriptionStateCounts(), { ...r, counts: r.counts.map((c) => Object.assign(new SubscriptionStateCount(), c)) });
  }

  @Query(() => [ChurnPeriod], { description: 'Per period of [from, to): active at start, new, renewed, reactivated, churned by kind, refunds, churn rate. Server API key only.' })
  async churn(
    @Arg('from', () => Date) from: Date,
    @Arg('to', () => Date) to: Date,
    @Arg('interval', () => AnalyticsIntervalEnum, INTERVAL_ARG) interval: AnalyticsInterval,
    @Arg('filter', () => AnalyticsFilter, { nullable: true }) filter: Filter | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ChurnPeriod[]> {
    assertServer(ctx.principal);
    const periods = await ctx.services.analytics.churn(from, to, interval, ctx.now, filter);
    return periods.map((p) => Object.assign(new ChurnPeriod(), p));
  }

  @Query(() => [RetentionCohort], { description: 'Cohorts by first purchase period in [from, to), and the share still entitled k periods after their first purchase. Server API key only.' })
  async retention(
    @Arg('from', () => Date) from: Date,
    @Arg('to', () => Date) to: Date,
    @Arg('interval', () => AnalyticsIntervalEnum, INTERVAL_ARG) interval: AnalyticsInterval,
    @Arg('periods', () => Int, { defaultValue: 12, description: `How many periods to follow each cohort: 1 to ${MAX_RETENTION_PERIODS}.` }) periods: number,
    @Arg('filter', () => AnalyticsFilter, { nullable: true }) filter: Filter | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RetentionCohort[]> {
    assertServer(ctx.principal);
    const cohorts = await ctx.services.analytics.retention(from, to, interval, periods, ctx.now, filter);
    return cohorts.map((c) => Object.assign(new RetentionCohort(), { ...c, periods: c.periods.map((p) => Object.assign(new RetentionPoint(), p)) }));
  }

  @Query(() => ActiveSubscriptions, { description: 'Entitled subscriptions at an instant (default: now). Server API key only.' })
  async activeSubscriptions(
    @Arg('at', () => Date, { nullable: true }) at: Date | null | undefined,
    @Arg('filter', () => AnalyticsFilter, { nullable: true }) filter: Filter | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ActiveSubscriptions> {
    assertServer(ctx.principal);
    return Object.assign(new ActiveSubscriptions(), await ctx.services.analytics.activeSubscriptions(at ?? ctx.now, ctx.now, filter));
  }

  @Query(() => RecurringRevenue, { description: 'Monthly recurring revenue per currency at an instant (default: now). Server API key only.' })
  async recurringRevenue(
    @Arg('at', () => Date, { nullable: true }) at: Date | null | undefined,
    @Arg('filter', () => AnalyticsFilter, { nullable: true }) filter: Filter | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RecurringRevenue> {
    assertServer(ctx.principal);
    const r = await ctx.services.analytics.recurringRevenue(at ?? ctx.now, ctx.now, filter);
    return Object.assign(new RecurringRevenue(), { ...r, currencies: r.currencies.map(amount) });
  }

  @Query(() => BillingIssues, { description: 'Subscriptions in a billing retry at an instant (default: now). Server API key only.' })
  async billingIssues(
    @Arg('at', () => Date, { nullable: true }) at: Date | null | undefined,
    @Arg('filter', () => AnalyticsFilter, { nullable: true }) filter: Filter | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<BillingIssues> {
    assertServer(ctx.principal);
    return Object.assign(new BillingIssues(), await ctx.services.analytics.billingIssues(at ?? ctx.now, ctx.now, filter));
  }

  @Query(() => Refunds, { description: 'Refunds recorded in [from, to), with refunded amounts per currency. Server API key only.' })
  async refunds(
    @Arg('from', () => Date) from: Date,
    @Arg('to', () => Date) to: Date,
    @Arg('filter', () => AnalyticsFilter, { nullable: true }) filter: Filter | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<Refunds> {
    assertServer(ctx.principal);
    const r = await ctx.services.analytics.refunds(from, to, filter);
    return Object.assign(new Refunds(), { ...r, amounts: r.amounts.map(amount) });
  }

  @Query(() => TrialConversions, { description: 'Free trials started in [from, to) and how many converted to a paid renewal. Server API key only.' })
  async trialConversions(
    @Arg('from', () => Date) from: Date,
    @Arg('to', () => Date) to: Date,
    @Arg('filter', () => AnalyticsFilter, { nullable: true }) filter: Filter | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<TrialConversions> {
    assertServer(ctx.principal);
    return Object.assign(new TrialConversions(), await ctx.services.analytics.trialConversions(from, to, ctx.now, filter));
  }
}

export const ANALYTICS_RESOLVERS = [AnalyticsResolver] as const;
