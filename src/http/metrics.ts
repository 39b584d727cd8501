// Prometheus metrics (prom-client), one registry per service instance.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The due re-check backlog per store, read at scrape time. */
export type BacklogSource = () => Promise<{ store: string; due: number; oldestDueAt: Date | null }[]>;

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly duration: Histogram<'route'>;
  private readonly operations: Counter<'operation' | 'outcome'>;
  private readonly errors: Counter<'code'>;
  private readonly webhookDeliveries: Counter<'outcome'>;
  private readonly operationNames = new Set<string>();
  private readonly rechecks: Counter<'store' | 'outcome'>;
  private readonly jobRuns: Counter<'job' | 'outcome'>;
  private backlogSource: BacklogSource | null = null;
  private backlogRead: { at: number; rows: Promise<{ store: string; due: number; oldestDueAt: Date | null }[]> } | null = null;

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
    this.rechecks = new Counter({
      name: 'iap_recheck_total',
      help: 'Scheduled subscription re-checks by store and outcome: answered, failed (store could not answer; retried), refused (definitive no)',
      labelNames: ['store', 'outcome'],
      registers: [this.registry],
    });
    this.jobRuns = new Counter({
      name: 'iap_job_runs_total',
      help: 'Background job runs on this instance by job and outcome: ok, failed, or skipped (another instance ran the slot)',
      labelNames: ['job', 'outcome'],
      registers: [this.registry],
    });
    const metrics = this;
    const backlog = (name: string, help: string, value: (r: { due: number; oldestDueAt: Date | null }) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['store'],
        registers: [this.registry],
        async collect() {
          const rows = await metrics.readBacklog();
          if (rows === null) return; // the database did not answer: keep the last values
          this.reset();
          for (const r of rows) this.set({ store: r.store }, value(r));
        },
      });
    backlog('iap_recheck_due', 'Subscriptions whose scheduled re-check is due now, by store', (r) => r.due);
    backlog('iap_recheck_lag_seconds', 'How long the oldest due re-check has been waiting, by store', (r) =>
      r.oldestDueAt ? Math.max(0, (Date.now() - r.oldestDueAt.getTime()) / 1000) : 0,
    );
  }

  /** One backlog read per scrape for both gauges (collected one after the other). */
  private async readBacklog(): Promise<{ store: string; due: number; oldestDueAt: Date | null }[] | null> {
    if (!this.backlogSource) return [];
    if (!this.backlogRead || Date.now() - this.backlogRead.at > 1000) this.backlogRead = { at: Date.now(), rows: this.backlogSource() };
    return this.backlogRead.rows.catch(() => null);
  }

  /** Where the backlog gauges read from (set once the services exist). */
  setBacklogSource(source: BacklogSource): void {
    this.backlogSource = source;
  }

  recheck(store: string, outcome: 'answered' | 'failed' | 'refused'): void {
    this.rechecks.inc({ store, outcome });
  }

  jobRun(job: string, outcome: 'ok' | 'failed' | 'skipped'): void {
    this.jobRuns.inc({ job, outcome });
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
