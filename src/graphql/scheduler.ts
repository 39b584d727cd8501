// GraphQL for operators: the scheduled re-check backlog per store and the last run of each background job
// (server API key only). The same figures as the Prometheus metrics, read from the database for all instances.
import { Ctx, Field, Float, Int, ObjectType, Query, Resolver } from 'type-graphql';
import { assertServer } from '../auth/authenticator.js';
import type { Store } from '../domain/types.js';
import type { GraphQLContext } from './context.js';
import { StoreEnum } from './types.js';

@ObjectType({ description: 'Scheduled re-checks of one store.' })
export class StoreRecheckStatus {
  @Field(() => StoreEnum) store!: Store;
  @Field(() => Int, { description: 'Subscriptions whose re-check is due now.' }) due!: number;
  @Field(() => Date, { nullable: true, description: 'When the oldest due re-check fell due.' }) oldestDueAt!: Date | null;
  @Field(() => Float, { description: 'Seconds the oldest due re-check has waited (0 when nothing is due).' }) lagSeconds!: number;
  @Field(() => Int, { description: 'Re-checks the store answered in the last hour.' }) answeredLastHour!: number;
  @Field(() => Int, { description: 'Re-checks the store could not answer in the last hour (retried with backoff).' }) failedLastHour!: number;
  @Field(() => Int, { description: 'Re-checks the store refused for good in the last hour.' }) refusedLastHour!: number;
  @Field(() => Int, { description: 'Failed store calls in a row; after 5 the store is paused.' }) consecutiveFailures!: number;
  @Field(() => Date, { nullable: true, description: 'While the store is paused after repeated failures: until when.' }) pausedUntil!: Date | null;
  @Field(() => Int, { description: 'The configured budget of scheduled requests per minute, across instances.' }) requestsPerMinute!: number;
}

@ObjectType({ description: 'The latest run of one background job.' })
export class JobRun {
  @Field(() => String) job!: string;
  @Field(() => Date, { description: 'The schedule slot it ran for.' }) slot!: Date;
  @Field(() => String, { description: 'The instance that ran it (host:pid:random).' }) instance!: string;
  @Field(() => Date) startedAt!: Date;
  @Field(() => Date, { nullable: true, description: 'Null while running, or when the instance died during the run.' }) finishedAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'What the run did, as JSON (or its error).' }) outcome!: string | null;
}

@ObjectType()
export class SchedulerStatusView {
  @Field(() => [StoreRecheckStatus]) stores!: StoreRecheckStatus[];
  @Field(() => [JobRun]) jobs!: JobRun[];
}

@Resolver()
export class SchedulerResolver {
  @Query(() => SchedulerStatusView, { description: 'Re-check backlog per store and the last run of each job (server API key only).' })
  async schedulerStatus(@Ctx() ctx: GraphQLContext): Promise<SchedulerStatusView> {
    assertServer(ctx.principal);
    const status = ctx.services.schedulerStatus;
    return Object.assign(new SchedulerStatusView(), {
      stores: (await status.storesAt(ctx.now)).map((s) => Object.assign(new StoreRecheckStatus(), s)),
      jobs: (await status.lastRuns()).map((j) => Object.assign(new JobRun(), j)),
    });
  }
}

export const SCHEDULER_RESOLVERS = [SchedulerResolver] as const;
