import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCatalogFile } from '../../src/config/catalog-file.js';
import { CatalogError, parseCatalog } from '../../src/domain/catalog.js';

const sub = { store: 'APP_STORE', productId: 'pro.monthly', kind: 'AUTO_RENEWABLE', entitlements: ['pro'] };

describe('catalog', () => {
  it('loads the shipped example catalog', () => {
    const catalog = loadCatalogFile('examples/catalog.yaml');
    expect(catalog.products.length).toBeGreaterThan(5);
    expect(catalog.find('PLAY_STORE', 'coins_100')).toMatchObject({ kind: 'CONSUMABLE', credits: { coins: 100 }, entitlements: [] });
    expect(catalog.find('APP_STORE', 'com.example.app.season_pass')).toMatchObject({ kind: 'NON_RENEWING', durationDays: 90 });
    expect(catalog.entitlements).toEqual(['no_ads', 'pro']);
    expect(catalog.find('APP_STORE', 'coins_100')).toBeUndefined();
  });

  it('accepts the same product id in both stores', () => {
    const c = parseCatalog({ products: [sub, { ...sub, store: 'PLAY_STORE' }] });
    expect(c.products).toHaveLength(2);
  });

  it.each([
    ['not a mapping', [], 'expected a mapping with a "products" list'],
    ['unknown kind', { products: [{ ...sub, kind: 'SUBSCRIPTION' }] }, 'unknown kind "SUBSCRIPTION"'],
    ['unknown store', { products: [{ ...sub, store: 'AMAZON' }] }, 'store must be one of'],
    ['duplicate product', { products: [sub, { ...sub, entitlements: ['other'] }] }, 'duplicate product APP_STORE pro.monthly (first at products[0])'],
    ['consumable without credits', { products: [{ store: 'APP_STORE', productId: 'coins', kind: 'CONSUMABLE' }] }, 'needs credits'],
    ['consumable with zero credits', { products: [{ store: 'APP_STORE', productId: 'c', kind: 'CONSUMABLE', credits: { coins: 0 } }] }, 'positive whole number'],
    ['consumable with entitlements', { products: [{ store: 'APP_STORE', productId: 'c', kind: 'CONSUMABLE', credits: { coins: 1 }, entitlements: ['pro'] }] }, 'grants credits, not entitlements'],
    ['non-renewing without duration', { products: [{ ...sub, kind: 'NON_RENEWING' }] }, 'needs durationDays'],
    ['duration on a subscription', { products: [{ ...sub, durationDays: 30 }] }, 'only for NON_RENEWING'],
    ['subscription without entitlements', { products: [{ ...sub, entitlements: [] }] }, 'non-empty list'],
    ['bad entitlement identifier', { products: [{ ...sub, entitlements: ['has space'] }] }, 'not a valid identifier'],
    ['unknown field', { products: [{ ...sub, price: 3 }] }, 'unknown field "price"'],
    ['empty product id', { products: [{ ...sub, productId: '' }] }, 'productId must be a non-empty string'],
  ])('rejects %s', (_name, doc, message) => {
    expect(() => parseCatalog(doc)).toThrow(CatalogError);
    expect(() => parseCatalog(doc)).toThrow(message);
  });

  it('names the file and the problem when a catalog file is broken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'iap-catalog-'));
    const file = join(dir, 'catalog.json');
    writeFileSync(file, JSON.stringify({ products: [{ ...sub, kind: 'LIFETIME' }] }));
    expect(() => loadCatalogFile(file)).toThrow(`catalog ${file}: products[0] (pro.monthly): unknown kind "LIFETIME"`);
    expect(() => loadCatalogFile(join(dir, 'missing.yaml'))).toThrow('cannot read (ENOENT)');
  });
});
