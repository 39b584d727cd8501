// Wires the services one instance of the service runs with.
import type { Catalog } from '../domain/catalog.js';
import type { Orm } from '../persistence/orm.js';
import type { StoreAdapters } from '../stores/adapter.js';
import { CreditService } from './credits.js';
import { CustomerQueries } from './customer-queries.js';
import { EntitlementReader, ormCustomerLookup, type CustomerLookup } from './entitlement-reader.js';
import { PurchaseRecorder } from './purchase-recorder.js';
import { SubmitReceiptService } from './submit-receipt.js';

export type Clock = () => Date;

export interface Services {
  orm: Orm;
  catalog: Catalog;
  clock: Clock;
  reader: EntitlementReader;
  queries: CustomerQueries;
  recorder: PurchaseRecorder;
  credits: CreditService;
  receipts: SubmitReceiptService;
}

export function createServices(
  orm: Orm,
  catalog: Catalog,
  adapters: StoreAdapters,
  clock: Clock,
  cacheTtlMs: number,
  customerLookup: CustomerLookup = ormCustomerLookup(orm),
): Services {
  const reader = new EntitlementReader(customerLookup, cacheTtlMs);
  const recorder = new PurchaseRecorder(orm, catalog, (appUserId) => reader.invalidate(appUserId));
  return {
    orm,
    catalog,
    clock,
    reader,
    queries: new CustomerQueries(orm),
    recorder,
    credits: new CreditService(orm),
    receipts: new SubmitReceiptService(adapters, recorder),
  };
}
