// Who may read /metrics, and the small server for /healthz and /metrics that the worker and METRICS_PORT use.
// Metrics name operations, stores and backlogs: not for anyone who can reach the API port.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Authenticator } from '../auth/authenticator.js';
import type { Metrics } from './metrics.js';

export type MetricsAccess = 'open' | 'none' | ((req: IncomingMessage) => Promise<boolean>);

/**
 * On the API port: nothing when metrics have a port of their own; open in development mode; otherwise a bearer
 * METRICS_TOKEN or a server API key.
 */
export function metricsAccessOnApiPort(options: { metricsPort: number | null; metricsToken: string | null; devMode: boolean; authenticator: Authenticator }): MetricsAccess {
  if (options.metricsPort !== null) return 'none';
  if (options.devMode) return 'open';
  const token = options.metricsToken ? digest(options.metricsToken) : null;
  return async (req) => {
    const authorization = typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined;
    const bearer = authorization?.match(/^Bearer\s+(.+)$/i)?.[1]?.trim();
    if (token && bearer && timingSafeEqual(digest(bearer), token)) return true;
    const apiKey = typeof req.headers['x-api-key'] === 'string' ? req.headers['x-api-key'] : undefined;
    try {
      return (await options.authenticator.authenticate(authorization, apiKey)).kind === 'server';
    } catch {
      return false;
    }
  };
}

/** /healthz and /metrics, nothing else. */
export function createMonitoringServer(metrics: Metrics, access: MetricsAccess): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (path !== '/metrics' || access === 'none') {
      res.writeHead(404).end();
      return;
    }
    void (async () => {
      if (access !== 'open' && !(await access(req))) {
        res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
        return;
      }
      const text = await metrics.render();
      res.writeHead(200, { 'content-type': metrics.contentType }).end(text);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
}

export async function listenOn(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
