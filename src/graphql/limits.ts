// Rejects abusive queries before they run: too deep, or too costly by field complexity.
import { Kind, type DocumentNode, type FragmentDefinitionNode, type GraphQLSchema, type OperationDefinitionNode, type SelectionSetNode } from 'graphql';
import { createRequire } from 'node:module';

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

/** Estimated cost of an operation: 1 per field unless the field declares its own complexity. */
export function queryComplexity(schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined, variables: Record<string, unknown>): number {
  return getComplexity({
    schema,
    query: document,
    operationName,
    variables,
    estimators: [fieldExtensionsEstimator(), simpleEstimator({ defaultComplexity: 1 })],
  });
}
