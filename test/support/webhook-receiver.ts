// A webhook receiver on loopback for tests: records every request as it arrived (raw body, headers) and answers
// as the test scripts it, per payload: a status code, or 'hang' (never answers, so the sender times out).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookPayload {
  id: string;
  type: string;
  occurredAt: string;
  recordedAt: string;
  appUserId: string | null;
  store: string | null;
  environment: string | null;
  productId: string | null;
  transactionId: string | null;
  originalTransactionId: string | null;
  data: Record<string, unknown>;
}

export interface ReceivedWebhook {
  rawBody: string;
  payload: WebhookPayload;
  headers: Record<string, string>;
  /** What the receiver answered: a status, or 'hang'. */
  answer: number | 'hang';
}

export type Answer = number | 'hang';

export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  /** Decides each answer; 200 unless a test says otherwise. */
  respond: (payload: WebhookPayload) => Answer = () => 200;
  /** Per appUserId: requests being handled right now, and the most ever at once. */
  readonly inFlight = new Map<string, number>();
  readonly maxInFlight = new Map<string, number>();
  /** Delay before answering (to let concurrent senders overlap). */
  answerDelayMs = 0;
  private server: Server | null = null;
  private readonly hanging = new Set<ServerResponse>();

  private constructor(public port: number) {}

  static async start(port = 0): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(port);
    await receiver.listen();
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/iap`;
  }

  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        const payload = JSON.parse(rawBody) as WebhookPayload;
        const user = payload.appUserId ?? '';
        const now = (this.inFlight.get(user) ?? 0) + 1;
        this.inFlight.set(user, now);
        this.maxInFlight.set(user, Math.max(now, this.maxInFlight.get(user) ?? 0));
        const answer = this.respond(payload);
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
        this.received.push({ rawBody, payload, headers, answer });
        const done = () => this.inFlight.set(user, (this.inFlight.get(user) ?? 1) - 1);
        if (answer === 'hang') {
          this.hanging.add(res);
          res.on('close', done);
          return;
        }
        setTimeout(() => {
          res.statusCode = answer;
          res.setHeader('content-type', 'text/plain');
          res.end(answer >= 200 && answer < 300 ? 'ok' : 'receiver says no');
          done();
        }, this.answerDelayMs);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening: connections are then refused (a receiver that is down). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  of(appUserId: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.payload.appUserId === appUserId);
  }
}

/** What a receiver does with x-iap-signature: recompute the HMAC over "<t>.<raw body>", compare in constant time,
 *  and refuse timestamps more than `toleranceSeconds` away from its own clock. */
export function verifySignature(header: string | undefined, rawBody: string, secret: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((kv) => kv.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1 || Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
