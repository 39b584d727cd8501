// App Store Server API through Apple's own client (JWT from the in-app purchase key), with a configurable base
// URL per environment and a request timeout, neither of which the library offers.
import {
  APIException,
  AppStoreServerAPIClient,
  Environment,
  GetTransactionHistoryVersion,
  type HistoryResponse,
  type OrderLookupResponse,
  type StatusResponse,
  type TransactionInfoResponse,
} from '@apple/app-store-server-library';
import type { AppleConfig, AppleEnvironment } from '../../config/config.js';

class ConfiguredClient extends AppStoreServerAPIClient {
  constructor(
    key: string,
    keyId: string,
    issuerId: string,
    bundleId: string,
    environment: Environment,
    private readonly baseUrl: string,
    private readonly timeoutMs: number,
  ) {
    super(key, keyId, issuerId, bundleId, environment);
  }

  protected override async makeFetchRequest(
    path: string,
    query: URLSearchParams,
    method: string,
    body: string | Buffer | undefined,
    headers: { [key: string]: string },
  ): Promise<any> {
    const q = query.toString();
    return fetch(`${this.baseUrl}${path}${q ? `?${q}` : ''}`, { method, body, headers, signal: AbortSignal.timeout(this.timeoutMs) });
  }
}

export type ApiFailure = {
  ok: false;
  /** NOT_FOUND: Apple does not know the id (in this environment). AUTH: our key was refused. UNAVAILABLE: try later. */
  kind: 'NOT_FOUND' | 'AUTH' | 'UNAVAILABLE' | 'INVALID';
  status: number | null;
  message: string;
};
export type ApiResult<T> = { ok: true; value: T } | ApiFailure;

export class AppStoreServerApi {
  private readonly clients: Record<AppleEnvironment, ConfiguredClient>;

  constructor(config: Pick<AppleConfig, 'bundleId' | 'requestTimeoutMs'> & { api: NonNullable<AppleConfig['api']> }) {
    const { api } = config;
    const make = (env: Environment, url: string) => new ConfiguredClient(api.privateKey, api.keyId, api.issuerId, config.bundleId, env, url, config.requestTimeoutMs);
    this.clients = { PRODUCTION: make(Environment.PRODUCTION, api.productionUrl), SANDBOX: make(Environment.SANDBOX, api.sandboxUrl) };
  }

  /** Get All Subscription Statuses: the latest transaction and renewal info of every subscription in the group. */
  subscriptionStatuses(env: AppleEnvironment, anyTransactionId: string): Promise<ApiResult<StatusResponse>> {
    return call(() => this.clients[env].getAllSubscriptionStatuses(anyTransactionId));
  }

  /** Get Transaction Info. */
  transactionInfo(env: AppleEnvironment, transactionId: string): Promise<ApiResult<TransactionInfoResponse>> {
    return call(() => this.clients[env].getTransactionInfo(transactionId));
  }

  /** Get Transaction History: every signed transaction of the customer's Apple account for this app, all pages. */
  async transactionHistory(env: AppleEnvironment, anyTransactionId: string): Promise<ApiResult<string[]>> {
    const signed: string[] = [];
    let revision: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const res: ApiResult<HistoryResponse> = await call(() =>
        this.clients[env].getTransactionHistory(anyTransactionId, revision, {}, GetTransactionHistoryVersion.V2),
      );
      if (!res.ok) return res;
      signed.push(...(res.value.signedTransactions ?? []));
      if (!res.value.hasMore || !res.value.revision) return { ok: true, value: signed };
      revision = res.value.revision;
    }
    return { ok: false, kind: 'INVALID', status: null, message: 'transaction history did not end after 1000 pages' };
  }

  /** Look Up Order ID: the order id on the customer's e-mailed receipt -> its signed transactions. */
  lookUpOrderId(env: AppleEnvironment, orderId: string): Promise<ApiResult<OrderLookupResponse>> {
    return call(() => this.clients[env].lookUpOrderId(orderId));
  }
}

async function call<T>(fn: () => Promise<T>): Promise<ApiResult<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return describeApiError(err);
  }
}

/** AccountNotFoundRetryable, AppNotFoundRetryable, OriginalTransactionIdNotFoundRetryable, TransactionIdNotFoundRetryable. */
const RETRYABLE_NOT_FOUND = new Set([4040002, 4040004, 4040006, 4040011]);

export function describeApiError(err: unknown): ApiFailure {
  if (err instanceof APIException) {
    const status = err.httpStatusCode;
    const message = `App Store Server API answered ${status}${err.apiError ? ` (${err.apiError}${err.errorMessage ? `: ${err.errorMessage}` : ''})` : ''}`;
    if (status === 401 || status === 403) return { ok: false, kind: 'AUTH', status, message };
    // Apple marks some 404s as "try again" (its data is not there yet).
    if (status === 404) return { ok: false, kind: RETRYABLE_NOT_FOUND.has(Number(err.apiError)) ? 'UNAVAILABLE' : 'NOT_FOUND', status, message };
    if (status === 429 || status >= 500) return { ok: false, kind: 'UNAVAILABLE', status, message };
    return { ok: false, kind: 'INVALID', status, message };
  }
  return { ok: false, kind: 'UNAVAILABLE', status: null, message: `App Store Server API unreachable: ${(err as Error).message}` };
}
