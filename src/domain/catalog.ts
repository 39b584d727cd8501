// Validates a parsed catalog document into products. Pure: the file is read elsewhere.
import { PRODUCT_KINDS, STORES, type CatalogProduct, type ProductKind, type Store } from './types.js';

export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CatalogError';
  }
}

export interface Catalog {
  readonly products: readonly CatalogProduct[];
  /** Every entitlement identifier any product unlocks, sorted. */
  readonly entitlements: readonly string[];
  find(store: Store, productId: string): CatalogProduct | undefined;
}

const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/**
 * Document shape (YAML or JSON):
 *   products:
 *     - store: APP_STORE | PLAY_STORE
 *       productId: com.example.pro.monthly
 *       kind: AUTO_RENEWABLE | NON_RENEWING | NON_CONSUMABLE | CONSUMABLE
 *       entitlements: [pro]            # not for CONSUMABLE
 *       durationDays: 30               # NON_RENEWING only
 *       credits: { coins: 100 }        # CONSUMABLE only, per unit bought
 *       displayName: Pro (monthly)     # optional
 */
export function parseCatalog(doc: unknown, source = 'catalog'): Catalog {
  if (!isRecord(doc) || !Array.isArray(doc.products)) {
    throw new CatalogError(`${source}: expected a mapping with a "products" list`);
  }
  const products: CatalogProduct[] = [];
  const seen = new Map<string, number>();
  doc.products.forEach((entry: unknown, index: number) => {
    const where = `${source}: products[${index}]`;
    if (!isRecord(entry)) throw new CatalogError(`${where}: expected a mapping`);
    const known = new Set(['store', 'productId', 'kind', 'entitlements', 'durationDays', 'credits', 'displayName']);
    for (const key of Object.keys(entry)) {
      if (!known.has(key)) throw new CatalogError(`${where}: unknown field "${key}"`);
    }
    const store = entry.store;
    if (typeof store !== 'string' || !(STORES as readonly string[]).includes(store)) {
      throw new CatalogError(`${where}: store must be one of ${STORES.join(', ')} (got ${JSON.stringify(store)})`);
    }
    const productId = entry.productId;
    if (typeof productId !== 'string' || productId.trim() === '' || productId.length > 200) {
      throw new CatalogError(`${where}: productId must be a non-empty string`);
    }
    const kind = entry.kind;
    if (typeof kind !== 'string' || !(PRODUCT_KINDS as readonly string[]).includes(kind)) {
      throw new CatalogError(`${where} (${productId}): unknown kind ${JSON.stringify(kind)}; expected one of ${PRODUCT_KINDS.join(', ')}`);
    }
    const key = `${store}:${productId}`;
    const previous = seen.get(key);
    if (previous !== undefined) {
      throw new CatalogError(`${where}: duplicate product ${store} ${productId} (first at products[${previous}])`);
    }
    seen.set(key, index);
    products.push({
      store: store as Store,
      productId,
      kind: kind as ProductKind,
      entitlements: parseEntitlements(entry.entitlements, kind as ProductKind, `${where} (${productId})`),
      durationDays: parseDuration(entry.durationDays, kind as ProductKind, `${where} (${productId})`),
      credits: parseCredits(entry.credits, kind as ProductKind, `${where} (${productId})`),
      displayName: typeof entry.displayName === 'string' ? entry.displayName : null,
    });
  });
  return makeCatalog(products);
}

export function makeCatalog(products: readonly CatalogProduct[]): Catalog {
  const byKey = new Map(products.map((p) => [`${p.store}:${p.productId}`, p]));
  const entitlements = [...new Set(products.flatMap((p) => p.entitlements))].sort();
  return {
    products,
    entitlements,
    find: (store, productId) => byKey.get(`${store}:${productId}`),
  };
}

function parseEntitlements(value: unknown, kind: ProductKind, where: string): string[] {
  if (kind === 'CONSUMABLE') {
    if (value !== undefined && !(Array.isArray(value) && value.length === 0)) {
      throw new CatalogError(`${where}: a CONSUMABLE grants credits, not entitlements`);
    }
    return [];
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new CatalogError(`${where}: entitlements must be a non-empty list of identifiers`);
  }
  for (const id of value) {
    if (typeof id !== 'string' || !IDENTIFIER.test(id)) {
      throw new CatalogError(`${where}: entitlement ${JSON.stringify(id)} is not a valid identifier (letters, digits, _ . : -)`);
    }
  }
  return [...new Set(value as string[])];
}

function parseDuration(value: unknown, kind: ProductKind, where: string): number | null {
  if (kind !== 'NON_RENEWING') {
    if (value !== undefined) throw new CatalogError(`${where}: durationDays is only for NON_RENEWING products`);
    return null;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 3660) {
    throw new CatalogError(`${where}: a NON_RENEWING product needs durationDays, a whole number from 1 to 3660`);
  }
  return value;
}

function parseCredits(value: unknown, kind: ProductKind, where: string): Record<string, number> {
  if (kind !== 'CONSUMABLE') {
    if (value !== undefined) throw new CatalogError(`${where}: credits are only for CONSUMABLE products`);
    return {};
  }
  if (!isRecord(value) || Object.keys(value).length === 0) {
    throw new CatalogError(`${where}: a CONSUMABLE product needs credits, e.g. { coins: 100 }`);
  }
  for (const [currency, amount] of Object.entries(value)) {
    if (!IDENTIFIER.test(currency)) throw new CatalogError(`${where}: credit currency ${JSON.stringify(currency)} is not a valid identifier`);
    if (typeof amount !== 'number' || !Number.isInteger(amount) || amount < 1) {
      throw new CatalogError(`${where}: credits.${currency} must be a positive whole number`);
    }
  }
  return { ...(value as Record<string, number>) };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
