// Rejects abusive queries before they run: too deep, or too costly by field complexity.
import type { ApolloServerPlugin } from '@apollo/server';
import {
  getOperationAST,
  GraphQLError,
  Kind,
  visit,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { createRequire } from 'node:module';
import { InputBounds } from './input-bounds.js';

// The package's ESM build imports graphql's .mjs files, a second copy of graphql next to the CommonJS one that
// type-graphql and Apollo load; its CommonJS build shares theirs.
const { fieldExtensionsEstimator, getComplexity, simpleEstimator } = createRequire(import.meta.url)(
  'graphql-query-complexity',
) as typeof import('graphql-query-complexity');

/** Depth of the deepest field selection of an operation, following fragments. */
export function queryDepth(document: DocumentNode, operationName: string | undefined): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  let operation: OperationDefinitionNode | undefined;
  for (const def of document.definitions) {
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
    else if (def.kind === Kind.OPERATION_DEFINITION && (!operationName || def.name?.value === operationName)) operation ??= def;
  }
  const depthOf = (set: SelectionSetNode | undefined, depth: number, seen: ReadonlySet<string>): number => {
    if (!set) return depth;
    let max = depth;
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        if (!sel.name.value.startsWith('__')) max = Math.max(max, depthOf(sel.selectionSet, depth + 1, seen));
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        max = Math.max(max, depthOf(sel.selectionSet, depth, seen));
      } else {
        const frag = fragments.get(sel.name.value);
        // A fragment cycle is invalid GraphQL and rejected by validation; just do not follow it here.
        if (frag && !seen.has(sel.name.value)) max = Math.max(max, depthOf(frag.selectionSet, depth, new Set([...seen, sel.name.value])));
      }
    }
    return max;
  };
  return operation ? depthOf(operation.selectionSet, 0, new Set()) : 0;
}

/**
 * Estimated cost of an operation: 1 per field unless the field declares its own complexity. Fields under
 * `@include` / `@skip` count as included, so the cost is the same for every variable value (no estimator reads
 * arguments either) and a verdict can be kept per document.
 */
export function queryComplexity(schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown>): number {
  return getComplexity({
    schema,
    query: withoutConditions(document),
    operationName,
    variables,
    estimators: [mutationEstimator(schema), fieldExtensionsEstimator(), simpleEstimator({ defaultComplexity: 1 })],
  });
}

/** A root mutation field opens a database transaction and may call a store: 40 of them fit the default limit. */
export const MUTATION_FIELD_COST = 25;

function mutationEstimator(schema: GraphQLSchema) {
  const mutation = schema.getMutationType();
  return ({ type, childComplexity }: { type: unknown; childComplexity: number }): number | void =>
    mutation && type === mutation ? MUTATION_FIELD_COST + childComplexity : undefined;
}

const CONDITIONAL = new Set(['include', 'skip']);
const unconditional = new WeakMap<DocumentNode, DocumentNode>();

/** The document with every @include / @skip removed: the most it can ever select. */
function withoutConditions(document: DocumentNode): DocumentNode {
  let stripped = unconditional.get(document);
  if (!stripped) {
    stripped = visit(document, { Directive: (node) => (CONDITIONAL.has(node.name.value) ? null : undefined) });
    unconditional.set(document, stripped);
  }
  return stripped;
}

const refuse = (message: string, code: string) => new GraphQLError(message, { extensions: { code, http: { status: 400 } } });

/**
 * Refuses, before anything runs: an operation name the document does not define (or a missing one where it
 * defines several), operation types other than query and mutation, input over its bounds, and queries too deep
 * or too costly. Depth and cost do not depend on variables, so each is measured once per document and
 * operation; input bounds are checked on every request.
 */
export function limitsPlugin<C extends object>(schema: GraphQLSchema, limits: { maxDepth: number; maxComplexity: number }): ApolloServerPlugin<C> {
  const bounds = new InputBounds(schema);
  // Apollo hands out the same DocumentNode for the same query text, so each distinct query is measured once.
  const verdicts = new WeakMap<DocumentNode, Map<string, string | null>>();
  // No estimate reads a variable's value; the estimator only needs them coercible. A value it cannot coerce is
  // the caller's input, answered as such and never kept as the document's verdict.
  const measure = (document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown>): string | null | GraphQLError => {
    const depth = queryDepth(document, operationName);
    if (depth > limits.maxDepth) return `query depth ${depth} exceeds the limit of ${limits.maxDepth}`;
    let cost: number;
    try {
      cost = queryComplexity(schema, document, operationName, variables);
    } catch (err) {
      const message = (err as Error).message;
      if (/^(Variable|Argument) "/.test(message)) return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
      // The estimator refuses documents beyond its own node limit: that is the same verdict.
      return `query too complex to estimate: ${message}`;
    }
    return cost > limits.maxComplexity ? `query complexity ${cost} exceeds the limit of ${limits.maxComplexity}` : null;
  };
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document }) {
          const name = request.operationName ?? undefined;
          const operation = getOperationAST(document, name);
          if (!operation) {
            const message = name === undefined ? 'the document holds several operations: name one in operationName' : `the document has no operation named "${name.slice(0, 100)}"`;
            throw refuse(message, 'GRAPHQL_VALIDATION_FAILED');
          }
          if (operation.operation !== 'query' && operation.operation !== 'mutation') {
            throw refuse(`${operation.operation} operations are not supported: use a query or a mutation`, 'GRAPHQL_VALIDATION_FAILED');
          }
          bounds.check(document, operation, request.variables ?? undefined);
          let byName = verdicts.get(document);
          if (!byName) verdicts.set(document, (byName = new Map()));
          const key = name ?? '';
          let verdict = byName.get(key);
          if (verdict === undefined) {
            const measured = measure(document, name, request.variables ?? {});
            if (measured instanceof GraphQLError) throw measured;
            byName.set(key, (verdict = measured));
          }
          if (verdict) throw refuse(verdict, 'QUERY_TOO_COMPLEX');
        },
      };
    },
  };
}
