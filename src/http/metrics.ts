// Prometheus metrics (prom-client), one registry per service instance.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly duration: Histogram<'route'>;
  private readonly operations: Counter<'operation' | 'outcome'>;
  private readonly errors: Counter<'code'>;
  private readonly webhookDeliveries: Counter<'outcome'>;
  private readonly operationNames = new Set<string>();

  constructor(defaultMetrics = true) {
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'iap_' });
    this.requests = new Counter({
      name: 'iap_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'iap_http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.operations = new Counter({
      name: 'iap_graphql_operations_total',
      help: 'GraphQL operations by operation name and outcome',
      labelNames: ['operation', 'outcome'],
      registers: [this.registry],
    });
    this.errors = new Counter({
      name: 'iap_graphql_errors_total',
      help: 'GraphQL errors by extensions.code',
      labelNames: ['code'],
      registers: [this.registry],
    });
    this.webhookDeliveries = new Counter({
      name: 'iap_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome: delivered, retried (failed, tried again later), failed (given up after 48 h)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.duration.observe({ route }, seconds);
  }

  graphqlOperation(operation: string, outcome: 'ok' | 'error'): void {
    this.operations.inc({ operation: this.operationLabel(operation), outcome });
  }

  /** Operation names come from clients: the first 100 distinct names get their own series, later ones "other". */
  private operationLabel(operation: string): string {
    const name = operation.slice(0, 64);
    if (this.operationNames.has(name)) return name;
    if (this.operationNames.size >= 100) return 'other';
    this.operationNames.add(name);
    return name;
  }

  graphqlError(code: string): void {
    this.errors.inc({ code });
  }

  webhookDelivery(outcome: 'delivered' | 'retried' | 'failed'): void {
    this.webhookDeliveries.inc({ outcome });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
