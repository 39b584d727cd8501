// Orders: an intent the server records before the app opens the store's purchase sheet. Its token travels
// through the store (Apple appAccountToken, Google obfuscatedAccountId), so the purchase is matched to its
// customer and order even when the app dies before submitting it (the store's notification carries the token).
import { randomUUID } from 'node:crypto';
import type { PurchaseRules } from '../config/config.js';
import type { Catalog } from '../domain/catalog.js';
import { AppError } from '../domain/errors.js';
import type { Store } from '../domain/types.js';
import type { Orm } from '../persistence/orm.js';
import { lockCustomer } from '../persistence/repository.js';
import { toDate } from '../persistence/snapshot-codec.js';

type Row = Record<string, unknown>;

export type OrderStatus = 'CREATED' | 'PAID' | 'FULFILLED' | 'EXPIRED' | 'CANCELED';

export interface OrderView {
  id: string;
  appUserId: string;
  store: Store | null;
  productId: string;
  /** A lowercase UUID: Apple `appAccountToken`, Google `setObfuscatedAccountId` (36 characters, no personal data). */
  token: string;
  status: OrderStatus;
  createdAt: Date;
  expiresAt: Date;
  /** The store transaction that paid it, once matched. */
  storeTransactionId: string | null;
}

const SELECT = `select o.id, c.app_user_id, o.store, o.product_id, o.token, o.status, o.created_at, o.expires_at, p.store_transaction_id
  from purchase_order o join customer c on c.id = o.customer_id left join purchase p on p.id = o.purchase_id`;

export class OrderService {
  constructor(
    private readonly orm: Orm,
    private readonly catalog: Catalog,
    private readonly rules: Pick<PurchaseRules, 'orderTtlMs'>,
  ) {}

  async create(appUserId: string, store: Store, productId: string, now: Date): Promise<OrderView> {
    if (!this.catalog.find(store, productId)) {
      throw new AppError('PRODUCT_NOT_IN_CATALOG', `product ${productId} is not in the catalog for ${store}`, { store, productId });
    }
    const id = randomUUID();
    await this.orm.em.fork().transactional(async (em) => {
      const customerId = await lockCustomer(em, appUserId);
      await em.execute(
        `insert into purchase_order (id, customer_id, store, product_id, token, status, created_at, expires_at, updated_at)
         values (?, ?, ?, ?, ?, 'CREATED', ?, ?, now())`,
        [id, customerId, store, productId, randomUUID(), now, new Date(now.getTime() + this.rules.orderTtlMs)],
      );
    });
    return (await this.get(id))!;
  }

  async get(orderId: string): Promise<OrderView | null> {
    if (!isUuid(orderId)) return null;
    const [row] = (await this.orm.em.getConnection().execute(`${SELECT} where o.id = ?`, [orderId])) as Row[];
    return row ? toView(row) : null;
  }

  async ofCustomer(appUserId: string, limit = 50): Promise<OrderView[]> {
    const rows = (await this.orm.em.getConnection().execute(`${SELECT} where c.app_user_id = ? order by o.created_at desc limit ?`, [appUserId, limit])) as Row[];
    return rows.map(toView);
  }

  /** The app gave up before paying (the user closed the purchase sheet). Only an open order can be canceled. */
  async cancel(orderId: string): Promise<OrderView> {
    const order = await this.get(orderId);
    if (!order) throw new AppError('NOT_FOUND', `no order ${orderId}`);
    const rows = (await this.orm.em.getConnection().execute(
      `update purchase_order set status = 'CANCELED', updated_at = now() where id = ? and status = 'CREATED' returning id`,
      [orderId],
    )) as Row[];
    if (rows.length === 0) throw new AppError('BAD_USER_INPUT', `order ${orderId} is ${order.status}; only a CREATED order can be canceled`, { status: order.status });
    return (await this.get(orderId))!;
  }

  /** Marks open orders past their time EXPIRED (a purchase carrying the token still fulfils one later). */
  async expireDue(now: Date): Promise<number> {
    const rows = (await this.orm.em.getConnection().execute(
      `update purchase_order set status = 'EXPIRED', updated_at = now() where status = 'CREATED' and expires_at <= ? returning id`,
      [now],
    )) as Row[];
    return rows.length;
  }
}

function toView(r: Row): OrderView {
  return {
    id: r.id as string,
    appUserId: r.app_user_id as string,
    store: (r.store as Store | null) ?? null,
    productId: r.product_id as string,
    token: r.token as string,
    status: r.status as OrderStatus,
    createdAt: toDate(r.created_at)!,
    expiresAt: toDate(r.expires_at)!,
    storeTransactionId: (r.store_transaction_id as string | null) ?? null,
  };
}

const isUuid = (s: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);
