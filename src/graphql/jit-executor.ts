// Executes operations with graphql-jit instead of graphql-js: a document compiled once into a plain function
// roughly halves execution cost on the hot entitlement query. It plugs into Apollo through its gateway interface
// (the extension point Apollo offers for a custom executor); parsing, validation, plugins and error formatting
// stay Apollo's.
//
// Compiled code is large (megabytes for a document of a few hundred fields) and every distinct document a caller
// sends would add some, so only what repeats is compiled: a document seen for the second time, small enough to
// be an app's query, and at most MAX_COMPILED of them, least recently used dropped first. Everything else runs
// on graphql-js, which keeps nothing per document.
import { createRequire } from 'node:module';
import type { GatewayExecutionResult, GatewayExecutor, GatewayInterface } from '@apollo/server-gateway-interface';
import { execute, GraphQLError, printSchema, visit, type DocumentNode, type GraphQLSchema } from 'graphql';

// graphql-jit's ESM build could pull a second copy of graphql; its CommonJS build shares the one Apollo uses.
const { compileQuery, isCompiledQuery } = createRequire(import.meta.url)('graphql-jit') as typeof import('graphql-jit');

type Compiled = Extract<ReturnType<typeof compileQuery<Record<string, unknown>, Record<string, unknown>>>, { query: unknown }>;

/** Documents with compiled operations kept at once. */
export const MAX_COMPILED = 200;
/** Documents with more fields than this are never compiled (the apps' own queries have a few dozen). */
export const MAX_COMPILED_FIELDS = 100;

export function jitGateway(schema: GraphQLSchema): GatewayInterface & { compiledDocuments(): number } {
  // Apollo hands out the same DocumentNode for the same query text while it keeps it parsed.
  const sightings = new WeakMap<DocumentNode, number>();
  const compiled = new Map<DocumentNode, Map<string, Compiled>>();

  const compiledFor = (document: DocumentNode, name: string | undefined): Compiled | null => {
    const byOperation = compiled.get(document);
    const hit = byOperation?.get(name ?? '');
    if (hit) {
      // Most recently used last: Map keeps insertion order.
      compiled.delete(document);
      compiled.set(document, byOperation!);
      return hit;
    }
    const seen = (sightings.get(document) ?? 0) + 1;
    sightings.set(document, seen);
    if (seen < 2 || fieldCount(document) > MAX_COMPILED_FIELDS) return null;
    const query = compileQuery<Record<string, unknown>, Record<string, unknown>>(schema, document, name);
    if (!isCompiledQuery(query)) return null;
    const ready = query as Compiled;
    const ops = byOperation ?? new Map<string, Compiled>();
    ops.set(name ?? '', ready);
    compiled.delete(document);
    compiled.set(document, ops);
    // Least recently used first.
    for (const oldest of compiled.keys()) {
      if (compiled.size <= MAX_COMPILED) break;
      compiled.delete(oldest);
    }
    return ready;
  };

  const executor: GatewayExecutor = async (ctx) => {
    // The operation the client named (the limits plugin refused a name the document lacks): ctx.operationName is
    // the resolved operation's own name, null for an anonymous one, and would let graphql-jit pick another.
    const name = ctx.request.operationName ?? undefined;
    const variables = ctx.request.variables ?? {};
    const query = compiledFor(ctx.document, name);
    if (!query) {
      return (await execute({ schema, document: ctx.document, contextValue: ctx.context, variableValues: variables, operationName: name })) as GatewayExecutionResult;
    }
    const result = (await query.query(undefined, ctx.context, variables)) as GatewayExecutionResult;
    if (!result.errors?.length) return result;
    // graphql-jit's errors are look-alikes, not graphql-js GraphQLError instances: rebuild them so Apollo and
    // our error formatting see the usual shape, with the resolver's own error as originalError.
    return { ...result, errors: result.errors.map(toGraphQLError) };
  };
  return {
    compiledDocuments: () => compiled.size,
    async load() {
      return { executor };
    },
    onSchemaLoadOrUpdate(callback) {
      callback({ apiSchema: schema, coreSupergraphSdl: printSchema(schema) });
      return () => undefined;
    },
    async stop() {},
  };
}

/** Field selections in the whole document (fragments included). */
function fieldCount(document: DocumentNode): number {
  let count = 0;
  visit(document, { Field: () => void count++ });
  return count;
}

function toGraphQLError(error: unknown): GraphQLError {
  // graphql-jit's errors pass `instanceof GraphQLError` but may lack `extensions`, which Apollo reads.
  const e = error as { message: string; path?: readonly (string | number)[]; originalError?: Error | null; extensions?: Record<string, unknown> };
  // A variable value that cannot be coerced is the caller's input, as graphql-js reports it through Apollo.
  const badVariable = !e.path && /^Variable "\$/.test(e.message);
  const extensions = badVariable ? { ...e.extensions, code: 'BAD_USER_INPUT' } : e.extensions;
  return new GraphQLError(e.message, { path: e.path, originalError: e.originalError ?? undefined, extensions });
}
