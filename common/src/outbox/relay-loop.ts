import { AsyncResource } from 'node:async_hooks';
import type { Logger } from '../logging/index.ts';

/** What one pass of a relay did (see {@link RelayLoop}). */
export interface RelayPassResult {
  /** Rows (events) delivered. */
  published: number;
  /**
   * Rows whose delivery failed: to be retried after backoff, or marked failed when they can never
   * be delivered. A failure worth retrying ends the pass; the later rows of the failed row's key
   * wait for it.
   */
  failed: number;
}

/** A pass as the loop runs it: with the shortest backoff of a failure worth retrying, if any. */
export interface RelayPass extends RelayPassResult {
  retryInMs?: number;
}

/** Options of {@link RelayLoop}. */
export interface RelayLoopOptions {
  /** For the async resource and the log line of a failed pass (`outbox relay`). */
  name: string;
  /** One delivery pass. Passes never overlap. */
  pass: () => Promise<RelayPass>;
  /** Time between passes when not woken; a pending retry's backoff shortens it. */
  pollIntervalMs: number;
  logger: Logger;
}

/**
 * When an outbox relay runs its passes, whatever its store (the Postgres outbox table, the posts'
 * MongoDB documents): one at once on start, then every `pollIntervalMs`, sooner when a retry is due,
 * and on {@link wake}. Wakes during a pass are coalesced into one more pass after it, and passes run
 * in the async context the loop was created in, never in the request that woke it.
 */
export class RelayLoop {
  private readonly scope: AsyncResource;
  private running = false;
  private stoppingNow = false;
  private timer: NodeJS.Timeout | undefined;
  private active: Promise<void> | undefined;
  private wakeRequested = false;
  private passes: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: RelayLoopOptions) {
    this.scope = new AsyncResource(options.name);
  }

  /** True between {@link stop} and the end of the pass it waits for: a pass should end after its current batch. */
  get stopping(): boolean {
    return this.stoppingNow;
  }

  /** Starts the passes: one at once, then as described above. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stoppingNow = false;
    this.scope.runInAsyncScope(() => this.tick());
  }

  /** Stops scheduling passes and waits for the one in progress. */
  async stop(): Promise<void> {
    this.running = false;
    this.stoppingNow = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.active;
    await this.passes.catch(() => undefined);
    this.stoppingNow = false;
  }

  /** A pass now instead of at the next poll (after a write that added rows). Ignored when stopped; returns at once. */
  wake(): void {
    this.scope.runInAsyncScope(() => this.tick());
  }

  /** Runs one pass after any in progress (also without {@link start}: a script, a test). */
  runOnce(): Promise<RelayPassResult> {
    const pass = this.passes.then(() => this.options.pass());
    this.passes = pass.catch(() => undefined);
    return pass.then(({ published, failed }) => ({ published, failed }));
  }

  private tick(): void {
    if (!this.running) return;
    if (this.active) {
      this.wakeRequested = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeRequested = false;
    this.active = this.passes
      .then(() => this.options.pass())
      .then(
        (result) => result.retryInMs,
        (error: unknown) => {
          this.options.logger.error({ err: error }, `${this.options.name} pass failed`);
          return undefined;
        },
      )
      .then((retryInMs) => {
        this.active = undefined;
        if (!this.running) return;
        if (this.wakeRequested) return this.tick();
        this.timer = setTimeout(() => this.tick(), Math.min(this.options.pollIntervalMs, retryInMs ?? Number.POSITIVE_INFINITY));
        this.timer.unref();
      });
    this.passes = this.active;
  }
}
