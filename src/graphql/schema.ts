// Builds the executable schema from the resolvers; `npm run schema` prints it to schema.graphql.
import 'reflect-metadata';
import { GraphQLError, GraphQLScalarType, Kind, lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { RESOLVERS } from './resolvers.js';

const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

function parseDateTime(value: string): Date {
  const date = new Date(value);
  // Year 0 parses here but PostgreSQL has none (1 BC comes before 1 AD).
  if (!ISO_8601.test(value) || Number.isNaN(date.getTime()) || date.getUTCFullYear() < 1) {
    throw new GraphQLError(`DateTime must be ISO 8601 with a time zone, e.g. 2026-01-31T12:00:00Z (got "${value}")`, {
      extensions: { code: 'BAD_USER_INPUT' },
    });
  }
  return date;
}

export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An instant, as an ISO 8601 string in UTC, e.g. 2026-01-31T12:00:00.000Z.',
  serialize(value) {
    const date = value instanceof Date ? value : new Date(String(value));
    if (Number.isNaN(date.getTime())) throw new GraphQLError('DateTime cannot represent an invalid date');
    return date.toISOString();
  },
  parseValue(value) {
    if (typeof value !== 'string') throw new GraphQLError('DateTime must be a string', { extensions: { code: 'BAD_USER_INPUT' } });
    return parseDateTime(value);
  },
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('DateTime must be a string', { extensions: { code: 'BAD_USER_INPUT' } });
    return parseDateTime(ast.value);
  },
});

export async function buildAppSchema(): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers: [...RESOLVERS],
    scalarsMap: [{ type: Date, scalar: DateTimeScalar }],
    validate: { forbidUnknownValues: false },
  });
}

export function printAppSchema(schema: GraphQLSchema): string {
  const printed = printSchema(lexicographicSortSchema(schema));
  // printSchema leaves the schema block out when the roots are named Query and Mutation; a tool reading the file
  // would then take the object type named Subscription (a store subscription) for the subscription root.
  const roots = [`query: ${schema.getQueryType()!.name}`, schema.getMutationType() && `mutation: ${schema.getMutationType()!.name}`].filter(Boolean);
  return printed.startsWith('schema {') ? `${printed}\n` : `schema {\n  ${roots.join('\n  ')}\n}\n\n${printed}\n`;
}
