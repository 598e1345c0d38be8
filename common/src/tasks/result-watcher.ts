import { QueueEvents } from 'bullmq';
import type { Redis } from '../redis/index.ts';
import type { Logger } from '../logging/index.ts';

/** How a job ended, as seen by a waiter. */
export type JobSettlement =
  | { kind: 'completed'; value: unknown }
  | { kind: 'failed'; failedReason: string }
  | { kind: 'closed' };

/** A registration for one job's end; `cancel` must be called when it is no longer needed. */
export interface JobWait {
  readonly settled: Promise<JobSettlement>;
  cancel(): void;
}

/**
 * Watches one queue's event stream (one BullMQ `QueueEvents`, i.e. one blocking connection) and
 * settles the waiters registered for a job id when it completes or finally fails. No polling.
 *
 * It starts reading from the Redis server time at creation, not from "now when the first XREAD
 * runs", so an event added while the connection is being set up is never missed.
 */
export class ResultWatcher {
  private readonly waiters = new Map<string, ((settlement: JobSettlement) => void)[]>();
  private events: QueueEvents | undefined;
  private closed = false;
  /** Resolves when the watcher reads the stream. */
  readonly ready: Promise<void>;

  constructor(
    private readonly queue: string,
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    this.ready = this.start();
    // A failed start is reported to every caller through `ready`; avoid an unhandled rejection here.
    this.ready.catch(() => {});
  }

  private async start(): Promise<void> {
    const [seconds, micros] = await this.connection.time();
    // One millisecond back: XREAD returns ids strictly after this one; a replayed event is harmless.
    const fromMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - 1;
    if (this.closed) return;
    const events = new QueueEvents(this.queue, { connection: this.connection, prefix: this.prefix, lastEventId: `${fromMs}-0` });
    this.events = events;
    events.on('error', (error) => this.logger.error({ err: error, queue: this.queue }, 'task result listener error'));
    events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { kind: 'completed', value: returnvalue }));
    events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, { kind: 'failed', failedReason }));
    await events.waitUntilReady();
  }

  private settle(jobId: string, settlement: JobSettlement): void {
    const list = this.waiters.get(jobId);
    if (list === undefined) return;
    this.waiters.delete(jobId);
    for (const resolve of list) resolve(settlement);
  }

  /** Registers interest in `jobId`'s end. Register before checking the job's state, then cancel. */
  wait(jobId: string): JobWait {
    if (this.closed) return { settled: Promise.resolve({ kind: 'closed' }), cancel: () => {} };
    let resolver!: (settlement: JobSettlement) => void;
    const settled = new Promise<JobSettlement>((resolve) => (resolver = resolve));
    const list = this.waiters.get(jobId);
    if (list === undefined) this.waiters.set(jobId, [resolver]);
    else list.push(resolver);
    return {
      settled,
      cancel: () => {
        const current = this.waiters.get(jobId);
        if (current === undefined) return;
        const index = current.indexOf(resolver);
        if (index >= 0) current.splice(index, 1);
        if (current.length === 0) this.waiters.delete(jobId);
      },
    };
  }

  /** Stops reading; pending waiters settle as `closed`. */
  async close(): Promise<void> {
    this.closed = true;
    const pending = [...this.waiters.values()];
    this.waiters.clear();
    for (const list of pending) for (const resolve of list) resolve({ kind: 'closed' });
    await this.ready.catch(() => {});
    await this.events?.close();
  }
}
