// graphql-jit keeps compiled code per document, megabytes for a large one: only documents that repeat and are
// small are compiled, and only so many of them; the rest run on graphql-js with the same answers.
import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import { jitGateway, MAX_COMPILED, MAX_COMPILED_FIELDS } from '../../src/graphql/jit-executor.js';
import { buildAppSchema } from '../../src/graphql/schema.js';

const context = { services: { catalog: { products: [{ store: 'APP_STORE', productId: 'p1', kind: 'CONSUMABLE', entitlements: [], durationDays: null, credits: {}, displayName: null }] } } };

async function executorOf() {
  const gateway = jitGateway(await buildAppSchema());
  const { executor } = await gateway.load({ apollo: { key: undefined, keyHash: undefined, graphRef: undefined, graphId: 'x', graphVariant: 'current' } } as never);
  const run = (document: ReturnType<typeof parse>, operationName?: string) =>
    executor!({ document, request: { operationName, variables: {} }, operationName: null, context } as never) as Promise<{ data?: unknown; errors?: unknown[] }>;
  return { gateway, run };
}

describe('graphql-jit compiled documents', () => {
  it.each([
    // documents, times each is run, fields per document, compiled at the end
    [1, 1, 1, 0],
    [1, 2, 1, 1],
    [10, 3, 2, 10],
    [MAX_COMPILED + 50, 2, 1, MAX_COMPILED],
    [5, 4, MAX_COMPILED_FIELDS + 1, 0],
  ])('%i documents run %i times with %i fields each leave %i compiled', async (documents, times, fields, expected) => {
    const { gateway, run } = await executorOf();
    const docs = Array.from({ length: documents }, (_, d) => parse(`{ ${Array.from({ length: fields }, (_, f) => `a${d}_${f}: products { productId }`).join(' ')} }`));
    for (let i = 0; i < times; i++) {
      for (const doc of docs) {
        const result = await run(doc);
        expect(result.errors).toBeUndefined();
        expect(Object.values(result.data as object)[0]).toEqual([{ productId: 'p1' }]);
      }
    }
    expect(gateway.compiledDocuments()).toBe(expected);
  });

  it('runs the operation the request names, compiled or not', async () => {
    const { run } = await executorOf();
    const doc = parse(`query A { a: products { productId } } query B { b: products { store } }`);
    for (let i = 0; i < 3; i++) {
      expect((await run(doc, 'B')).data).toEqual({ b: [{ store: 'APP_STORE' }] });
      expect((await run(doc, 'A')).data).toEqual({ a: [{ productId: 'p1' }] });
    }
  });
});
