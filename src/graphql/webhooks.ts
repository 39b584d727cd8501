// GraphQL for outbound webhooks: the delivery log and a manual retry (server API key only).
import { Arg, Ctx, Field, ID, Int, Mutation, ObjectType, Query, Resolver, registerEnumType } from 'type-graphql';
import { assertServer } from '../auth/authenticator.js';
import { WEBHOOK_DELIVERY_STATUSES, type WebhookDeliveryStatus } from '../services/webhooks.js';
import type { GraphQLContext } from './context.js';

export const WebhookDeliveryStatusEnum = Object.fromEntries(WEBHOOK_DELIVERY_STATUSES.map((s) => [s, s])) as { [K in WebhookDeliveryStatus]: K };
registerEnumType(WebhookDeliveryStatusEnum, {
  name: 'WebhookDeliveryStatus',
  description: 'PENDING (not acknowledged yet: due, being sent, or waiting for a retry), DELIVERED (answered 2xx), FAILED (no 2xx within 48 hours).',
});

@ObjectType({ description: 'One event sent, or being sent, to one webhook URL: an entry of the delivery log.' })
export class WebhookDelivery {
  @Field(() => ID, { description: 'The delivery id; pass it as `before` for the next page.' }) id!: string;
  @Field(() => String, { description: 'The event id the payload and the x-iap-event-id header carry, e.g. evt_42.' }) eventId!: string;
  @Field(() => String) eventType!: string;
  @Field(() => String, { nullable: true }) appUserId!: string | null;
  @Field(() => String) url!: string;
  @Field(() => WebhookDeliveryStatusEnum) status!: WebhookDeliveryStatus;
  @Field(() => Int, { description: 'Attempts made so far, including one in progress.' }) attempts!: number;
  @Field(() => Date, { nullable: true }) lastAttemptAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'While PENDING: when the next attempt is due. Null otherwise.' }) nextAttemptAt!: Date | null;
  @Field(() => Int, { nullable: true, description: "The last attempt's HTTP status; null when there was no answer (refused, timed out)." })
  responseStatus!: number | null;
  @Field(() => String, { nullable: true }) lastError!: string | null;
  @Field(() => Date, { nullable: true }) deliveredAt!: Date | null;
  @Field(() => Date) createdAt!: Date;
}

@Resolver()
export class WebhookResolver {
  @Query(() => [WebhookDelivery], {
    description: 'The webhook delivery log, newest first (server API key only).',
    complexity: ({ childComplexity }) => 1 + 10 * childComplexity,
  })
  async webhookDeliveries(
    @Arg('status', () => WebhookDeliveryStatusEnum, { nullable: true }) status: WebhookDeliveryStatus | null | undefined,
    @Arg('appUserId', () => String, { nullable: true }) appUserId: string | null | undefined,
    @Arg('eventId', () => String, { nullable: true, description: 'The event id as in the payload, e.g. evt_42.' }) eventId: string | null | undefined,
    @Arg('limit', () => Int, { defaultValue: 50, description: '1 to 200.' }) limit: number,
    @Arg('before', () => String, { nullable: true, description: 'A delivery id: only older deliveries (the next page).' }) before: string | null | undefined,
    @Ctx() ctx: GraphQLContext,
  ): Promise<WebhookDelivery[]> {
    assertServer(ctx.principal);
    const rows = await ctx.services.webhooks.list({ status, appUserId, eventId, limit, before });
    return rows.map((r) => Object.assign(new WebhookDelivery(), r));
  }

  @Mutation(() => WebhookDelivery, {
    description: 'Sets a FAILED webhook delivery back to PENDING, due now: one more attempt (server API key only). A PENDING one is returned unchanged.',
  })
  async retryWebhookDelivery(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext): Promise<WebhookDelivery> {
    assertServer(ctx.principal);
    return Object.assign(new WebhookDelivery(), await ctx.services.webhooks.retry(id, ctx.now));
  }
}

export const WEBHOOK_RESOLVERS = [WebhookResolver] as const;
