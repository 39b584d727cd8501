// Background jobs: thin node-cron triggers that call services. Each job claims its rows with a lease
// (FOR UPDATE SKIP LOCKED), so every instance may run them without sending anything twice.
import { schedule, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Services } from '../services/container.js';

export interface Job {
  name: string;
  cron: string;
  run: () => Promise<unknown>;
}

/** A cron expression for "every `seconds` seconds" (a divisor of 60; 60 is every minute). */
export function everySeconds(seconds: number): string {
  return seconds >= 60 ? '* * * * *' : `*/${seconds} * * * * *`;
}

export function jobsFor(services: Services, intervalSeconds = 60): Job[] {
  const now = () => services.clock();
  const often = everySeconds(intervalSeconds);
  const jobs: Job[] = [
    { name: 'store-tasks', cron: often, run: () => services.storeTasks.runDue(now()) },
    { name: 'pending-proofs', cron: often, run: () => services.receipts.retryPending(now()) },
    { name: 'expire-orders', cron: '*/5 * * * *', run: () => services.orders.expireDue(now()) },
  ];
  const google = services.googleNotifications;
  if (google) {
    jobs.push({ name: 'google-notifications', cron: often, run: () => google.processDue(now()) });
    jobs.push({ name: 'google-voided-purchases', cron: '17 * * * *', run: () => google.syncVoidedPurchases(now()) });
  }
  const apple = services.appleNotifications;
  if (apple) jobs.push({ name: 'apple-notifications', cron: often, run: () => apple.processDue(now()) });
  const webhooks = services.webhooks;
  // Every 5 seconds (node-cron's optional seconds field), not every minute: a commit on this instance already
  // nudges delivery at once, but retries fall due at 30 s, 1 min, ... and writes that do not nudge still queue
  // deliveries; 5 s keeps those close to their due time for one indexed query per run when nothing is due.
  if (webhooks.enabled) jobs.push({ name: 'webhooks', cron: everySeconds(Math.min(5, intervalSeconds)), run: () => webhooks.deliverDue(now()) });
  return jobs;
}

export class Scheduler {
  private readonly tasks: ScheduledTask[] = [];

  constructor(
    private readonly jobs: readonly Job[],
    private readonly log: Logger,
  ) {}

  start(): void {
    for (const job of this.jobs) {
      const task = schedule(job.cron, () => this.runJob(job), { name: job.name, noOverlap: true });
      task.unref();
      this.tasks.push(task);
    }
    this.log.info({ jobs: this.jobs.map((j) => `${j.name} (${j.cron})`) }, 'scheduler started');
  }

  /** Runs every job once now (at start-up: work left by a crash is picked up without waiting). */
  async runAllOnce(): Promise<void> {
    for (const job of this.jobs) await this.runJob(job);
  }

  async stop(): Promise<void> {
    await Promise.all(this.tasks.splice(0).map((t) => t.destroy()));
  }

  private async runJob(job: Job): Promise<void> {
    try {
      const result = await job.run();
      this.log.debug({ job: job.name, result }, 'job finished');
    } catch (err) {
      this.log.error({ job: job.name, err }, 'job failed; it runs again at its next slot');
    }
  }
}
