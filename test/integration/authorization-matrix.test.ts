// The authorization matrix: every root field of schema.graphql, called over HTTP by every kind of caller. The
// fields come from the committed schema at test time, so a new field fails here until it is classified below.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  buildSchema,
  getNamedType,
  GraphQLSchema,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  isScalarType,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLNamedType,
  type GraphQLObjectType,
  type GraphQLOutputType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseDigest, digestChanges } from '../support/db-digest.js';
import { DATABASE_KINDS } from '../support/databases.js';
import { purchase } from '../support/purchases.js';
import { startTestApp, TEST_API_KEY, type GqlResponse, type TestApp } from '../support/test-app.js';
import { userToken } from '../support/tokens.js';

/**
 * Who may call each root field, read from the resolvers (src/graphql/*.ts):
 * - server-only: `assertServer` (a server API key; any user token is FORBIDDEN);
 * - own-customer: `assertCanAccess` on the appUserId argument, or on the owner of the order named (a user token
 *   only for its own customer, the server for anyone);
 * - any-user: no check beyond authentication (any valid user token or a server key).
 * Every caller without valid credentials gets 401 UNAUTHENTICATED, whatever the field.
 */
type Access = 'server-only' | 'own-customer' | 'any-user';
const EXPECTED: Record<string, Access> = {
  'Query.activeSubscriptions': 'server-only',
  'Query.billingIssues': 'server-only',
  'Query.churn': 'server-only',
  'Query.customer': 'own-customer',
  'Query.customerEvents': 'server-only',
  'Query.entitlements': 'own-customer',
  'Query.order': 'own-customer',
  'Query.products': 'any-user',
  'Query.purchaseLookup': 'server-only',
  'Query.recurringRevenue': 'server-only',
  'Query.refunds': 'server-only',
  'Query.retention': 'server-only',
  'Query.schedulerStatus': 'server-only',
  'Query.subscriptionStateCounts': 'server-only',
  'Query.trialConversions': 'server-only',
  'Query.webhookDeliveries': 'server-only',
  'Mutation.cancelOrder': 'own-customer',
  'Mutation.createOrder': 'own-customer',
  'Mutation.grantPromotionalEntitlement': 'server-only',
  'Mutation.restorePurchases': 'own-customer',
  'Mutation.retryWebhookDelivery': 'server-only',
  'Mutation.revokePromotionalEntitlement': 'server-only',
  'Mutation.spendCredits': 'own-customer',
  'Mutation.submitReceipt': 'own-customer',
};

// The committed schema names its roots (schema { query mutation }): the object type named Subscription is a store
// subscription, not a subscription root.
const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));
const ROOTS = [schema.getQueryType(), schema.getMutationType()].filter((t): t is GraphQLObjectType => !!t);
const ROOT_FIELDS = ROOTS.flatMap((root) => Object.values(root.getFields()).map((field) => ({ root, field, key: `${root.name}.${field.name}` })));

const OWNER = 'alice';
const INTRUDER = 'bob';

interface ArgContext {
  appUserId: string;
  /** An order of OWNER's, for arguments that name an order. */
  orderId: string;
}

/** A value for a required argument or input field that passes the schema's own checks. */
function minimalValue(type: GraphQLInputType, name: string, ctx: ArgContext): unknown {
  if (isNonNullType(type)) return minimalValue(type.ofType, name, ctx);
  if (isListType(type)) return [minimalValue(type.ofType, name, ctx)];
  if (isInputObjectType(type)) {
    const value: Record<string, unknown> = {};
    for (const f of Object.values(type.getFields())) {
      if (isNonNullType(f.type) && f.defaultValue === undefined) value[f.name] = minimalValue(f.type, f.name, ctx);
    }
    return value;
  }
  if (isEnumType(type)) return type.getValues()[0]!.value;
  if (!isScalarType(type)) throw new Error(`no minimal value for ${String(type)}`);
  switch (type.name) {
    case 'Int':
      return 1;
    case 'Float':
      return 1;
    case 'Boolean':
      return true;
    case 'ID':
      return /order/i.test(name) ? ctx.orderId : randomUUID();
    case 'DateTime':
      return name === 'to' ? '2026-02-01T00:00:00Z' : '2026-01-01T00:00:00Z';
    case 'JSONObject':
      return {};
    case 'String':
      if (/userid/i.test(name)) return ctx.appUserId;
      if (/order/i.test(name)) return ctx.orderId;
      if (name === 'productId') return 'com.example.app.pro.monthly';
      if (name === 'entitlement') return 'pro';
      if (name === 'currency') return 'coins';
      if (name === 'idempotencyKey') return `matrix-${randomUUID()}`;
      if (name === 'reason') return 'authorization matrix';
      return ctx.appUserId;
    default:
      throw new Error(`no minimal value for scalar ${type.name}`);
  }
}

/** The first leaf field (without required arguments), recursively: the smallest selection the type allows. */
function minimalSelection(type: GraphQLOutputType | GraphQLNamedType): string {
  const named = getNamedType(type);
  if (isLeafType(named)) return '';
  if (!isObjectType(named)) throw new Error(`no minimal selection for ${named.name}`);
  const fields = Object.values(named.getFields()).filter((f) => f.args.every((a) => !isNonNullType(a.type) || a.defaultValue !== undefined));
  const leaf = fields.find((f) => isLeafType(getNamedType(f.type)));
  if (leaf) return `{ ${leaf.name} }`;
  const first = fields[0];
  if (!first) throw new Error(`no selectable field on ${named.name}`);
  return `{ ${first.name} ${minimalSelection(first.type)} }`;
}

/** The operation calling one root field with its required arguments, as variables. */
function operationFor(root: GraphQLObjectType, field: GraphQLField<unknown, unknown>, ctx: ArgContext) {
  const required = field.args.filter((a) => isNonNullType(a.type) && a.defaultValue === undefined);
  const variables: Record<string, unknown> = {};
  for (const a of required) variables[a.name] = minimalValue(a.type, a.name, ctx);
  const declarations = required.map((a) => `$${a.name}: ${String(a.type)}`).join(', ');
  const args = required.map((a) => `${a.name}: $${a.name}`).join(', ');
  const keyword = root === schema.getMutationType() ? 'mutation' : 'query';
  const query = `${keyword} Matrix${declarations ? `(${declarations})` : ''} { ${field.name}${args ? `(${args})` : ''} ${minimalSelection(field.type)} }`;
  return { query, variables };
}

interface Caller {
  name: string;
  headers: () => Promise<Record<string, string>>;
  /** What this caller should get from a field of each kind: 'allowed', or the error code it must get. */
  outcome: Record<Access, 'allowed' | 'UNAUTHENTICATED' | 'FORBIDDEN'>;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const unauthenticated = { 'server-only': 'UNAUTHENTICATED', 'own-customer': 'UNAUTHENTICATED', 'any-user': 'UNAUTHENTICATED' } as const;

const CALLERS: Caller[] = [
  { name: 'no credentials', headers: async () => ({}), outcome: unauthenticated },
  { name: 'a wrong API key (x-api-key)', headers: async () => ({ 'x-api-key': 'wrong-key-wrong-key-wrong-key-0000' }), outcome: unauthenticated },
  { name: 'a wrong API key (bearer)', headers: async () => bearer('wrong-key-wrong-key-wrong-key-0000'), outcome: unauthenticated },
  { name: 'a token signed with another secret', headers: async () => bearer(await userToken(OWNER, { secret: 'another-secret-another-secret-another-secret' })), outcome: unauthenticated },
  { name: `${INTRUDER}'s token on ${OWNER}'s data`, headers: async () => bearer(await userToken(INTRUDER)), outcome: { 'server-only': 'FORBIDDEN', 'own-customer': 'FORBIDDEN', 'any-user': 'allowed' } },
  { name: `${OWNER}'s token on ${OWNER}'s data`, headers: async () => bearer(await userToken(OWNER)), outcome: { 'server-only': 'FORBIDDEN', 'own-customer': 'allowed', 'any-user': 'allowed' } },
  { name: 'the server API key', headers: async () => bearer(TEST_API_KEY), outcome: { 'server-only': 'allowed', 'own-customer': 'allowed', 'any-user': 'allowed' } },
];

const codes = (res: GqlResponse) => (res.errors ?? []).map((e) => String(e.extensions?.code ?? 'NO_CODE'));

describe('the authorization matrix', () => {
  it('has an expectation for every root field of schema.graphql, and none for a field that is gone', () => {
    expect(schema.getSubscriptionType()).toBeUndefined();
    const fields = ROOT_FIELDS.map((f) => f.key);
    expect(fields.filter((k) => !(k in EXPECTED)), 'root fields nobody classified in EXPECTED').toEqual([]);
    expect(Object.keys(EXPECTED).filter((k) => !fields.includes(k)), 'EXPECTED entries for fields not in schema.graphql').toEqual([]);
  });
});

describe.each(DATABASE_KINDS)('authorization matrix on %s', (kind) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(kind);
    // OWNER has something to read: a subscription, a lifetime unlock and credits.
    await t.app.services.recorder.record(OWNER, [purchase({ productId: 'com.example.app.no_ads', transactionId: `matrix-noads-${kind}` })], new Date());
    await t.app.services.recorder.record(OWNER, [purchase({ store: 'PLAY_STORE', productId: 'coins_100', transactionId: `matrix-coins-${kind}` })], new Date());
  });
  afterAll(async () => {
    await t?.close();
  });

  async function newOrderOfOwner(): Promise<string> {
    const res = await t.server<{ createOrder: { id: string } }>(
      `mutation($input: CreateOrderInput!) { createOrder(input: $input) { id } }`,
      { input: { appUserId: OWNER, store: 'APP_STORE', productId: 'com.example.app.pro.monthly' } },
    );
    expect(res.errors).toBeUndefined();
    return res.data!.createOrder.id;
  }

  it.each(ROOT_FIELDS.map((f) => [f.key, f] as const))('%s', async (key, { root, field }) => {
    const access = EXPECTED[key];
    if (!access) throw new Error(`${key} has no entry in EXPECTED: classify it as server-only, own-customer or any-user`);
    const ctx: ArgContext = { appUserId: OWNER, orderId: await newOrderOfOwner() };
    const isMutation = root === schema.getMutationType();
    const refused = CALLERS.filter((c) => c.outcome[access] !== 'allowed');
    const allowed = CALLERS.filter((c) => c.outcome[access] === 'allowed');
    const problems: string[] = [];

    // Refused callers first, on an untouched database: they must change nothing.
    const before = await databaseDigest(t);
    for (const caller of refused) {
      const { query, variables } = operationFor(root, field, ctx);
      const res = await t.gql(query, variables, await caller.headers());
      const expected = caller.outcome[access];
      const got = codes(res);
      if (!got.includes(expected)) problems.push(`${caller.name}: expected ${expected}, got HTTP ${res.status} ${JSON.stringify(got)} data=${JSON.stringify(res.data)}`);
      if (expected === 'UNAUTHENTICATED' && res.status !== 401) problems.push(`${caller.name}: expected HTTP 401, got ${res.status}`);
      if (res.data != null && res.data[field.name] != null) problems.push(`${caller.name}: got data ${JSON.stringify(res.data).slice(0, 300)}`);
      if (res.status >= 500 || got.includes('INTERNAL_SERVER_ERROR')) problems.push(`${caller.name}: HTTP ${res.status} ${JSON.stringify(got)}`);
    }
    const changes = digestChanges(before, await databaseDigest(t));
    if (changes.length > 0) problems.push(`refused callers${isMutation ? '' : ' of a query'} changed the database: ${changes.join('; ')}`);

    for (const caller of allowed) {
      const { query, variables } = operationFor(root, field, ctx);
      const res = await t.gql(query, variables, await caller.headers());
      const got = codes(res);
      const bad = got.filter((c) => ['UNAUTHENTICATED', 'FORBIDDEN', 'INTERNAL_SERVER_ERROR', 'GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_PARSE_FAILED'].includes(c));
      if (res.status >= 500 || res.status === 401 || bad.length > 0) {
        problems.push(`${caller.name}: expected to be allowed, got HTTP ${res.status} ${JSON.stringify(res.errors?.map((e) => [e.extensions?.code, e.message]))} for ${query} ${JSON.stringify(variables)}`);
      }
    }
    expect(problems, `${key} (${access})`).toEqual([]);
  });
});
