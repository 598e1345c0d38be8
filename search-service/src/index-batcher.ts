import { hostname } from 'node:os';
import type { Logger } from '@civildiy/common';
import { embedBatch, type EmbeddedBatch } from '@civildiy/common/contracts';
import { TaskFailedError, TaskTimeoutError, type TaskEnqueuer, type TaskRef } from '@civildiy/common/tasks';
import { claimBatch, embeddingProblem, failBatch, renewLease, storeBatch, textId, type ClaimedBatch } from './index-queue.ts';
import type { SearchMetrics } from './search-metrics.ts';
import type { EmbeddingSpace, SearchDb } from './search-state.ts';

/** Options of {@link IndexBatcher}. */
export interface IndexBatcherOptions {
  db: SearchDb;
  /** Sends the batches (the runtime's `TaskClient`). */
  tasks: TaskEnqueuer;
  /** The embedding task. Default: `search.embed` from the contracts (tests pass one with a short retry policy). */
  task?: typeof embedBatch;
  /**
   * The space the worker embeds in (`EMBEDDINGS_MODEL` and `EMBEDDINGS_DIMENSIONS`, the worker's as
   * search-service's): only rows of generations in it are claimed, and results of another dimension
   * fail their batch.
   */
  space: EmbeddingSpace;
  /** Rows per batch (`SEARCH_BATCH_SIZE`). Default 32. */
  batchSize?: number;
  /** Batches in flight at once (`SEARCH_BATCH_CONCURRENCY`). Default 4. */
  concurrency?: number;
  /** How long claimed rows stay with this batcher without a renewal (`SEARCH_LEASE_MS`); renewed every third of it while a batch waits. Default 60,000. */
  leaseMs?: number;
  /** How often it looks for work when not woken (`SEARCH_POLL_MS`). Default 2,000. */
  pollMs?: number;
  /** This claimer's name in `claimed_by`. Default: host, pid and a random suffix. */
  claimer?: string;
  logger: Logger;
  metrics?: SearchMetrics;
}

/** Resolves or rejects with `promise`, or rejects with the signal's reason once it aborts (`promise` is then left to settle unobserved). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

async function settlesWithin(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([promise.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Turns pending index rows into vectors: claims batches of rows from the buffer table (safe beside
 * other batchers, in this process or others), sends each as a `search.embed` task keyed by its
 * batch id, waits for the result while renewing the rows' lease, and stores the vectors (see
 * `storeBatch`). A batch whose task fails for good leaves its rows `failed`, with the error, until
 * they are redriven. Woken by the consumer after it queues work; polls otherwise.
 */
export class IndexBatcher {
  /** This batcher's name in the rows it claims. */
  readonly claimer: string;
  private readonly db: SearchDb;
  private readonly tasks: TaskEnqueuer;
  private readonly task: typeof embedBatch;
  private readonly space: EmbeddingSpace;
  private readonly batchSize: number;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly logger: Logger;
  private readonly metrics: SearchMetrics | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abandon = new AbortController();
  private loop: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private stopping = false;
  private woken = false;
  private wakeIdle: (() => void) | undefined;

  constructor(options: IndexBatcherOptions) {
    this.db = options.db;
    this.tasks = options.tasks;
    this.task = options.task ?? embedBatch;
    this.space = options.space;
    this.batchSize = options.batchSize ?? 32;
    this.concurrency = options.concurrency ?? 4;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.pollMs = options.pollMs ?? 2_000;
    this.claimer = options.claimer ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.logger = options.logger.child({ component: 'index-batcher', claimer: this.claimer });
    this.metrics = options.metrics;
  }

  /** Starts claiming. Idempotent. */
  start(): void {
    if (this.closing) throw new TypeError('A closed batcher cannot start again');
    this.loop ??= this.run();
  }

  /** Looks for work now instead of at the next poll (call it after queueing rows). */
  wake(): void {
    this.woken = true;
    this.wakeIdle?.();
  }

  /** Batches in flight. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * Stops claiming, waits up to `timeoutMs` for the batches in flight, then gives up on the rest:
   * their rows stay claimed and return to the pool when their lease runs out. Idempotent.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      this.stopping = true;
      this.wake();
      await this.loop;
      const settled = Promise.allSettled([...this.inFlight]);
      if (!(await settlesWithin(settled, options.timeoutMs ?? 10_000))) {
        this.abandon.abort(new Error('The batcher closed before the batch finished'));
        await settled;
      }
    })();
    return this.closing;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      this.woken = false;
      let failed = false;
      try {
        while (!this.stopping && this.inFlight.size < this.concurrency) {
          const batch = await claimBatch(this.db, { claimer: this.claimer, limit: this.batchSize, leaseMs: this.leaseMs, space: this.space });
          if (!batch) break;
          this.launch(batch);
        }
      } catch (error) {
        failed = true;
        this.logger.error({ err: error }, 'claiming index work failed; trying again at the next poll');
      }
      if (this.stopping || (this.woken && !failed)) continue;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.wakeIdle = undefined;
          resolve();
        };
        const timer = setTimeout(done, this.pollMs);
        this.wakeIdle = done;
      });
    }
  }

  private launch(batch: ClaimedBatch): void {
    const running: Promise<void> = this.process(batch).finally(() => {
      this.inFlight.delete(running);
      this.wake();
    });
    this.inFlight.add(running);
  }

  private async process(batch: ClaimedBatch): Promise<void> {
    const log = this.logger.child({ batchId: batch.batchId, rows: batch.rows.length });
    const renewal = setInterval(() => {
      renewLease(this.db, batch, this.leaseMs).catch((error: unknown) => log.warn({ err: error }, 'renewing the lease of a batch failed'));
    }, Math.max(100, Math.floor(this.leaseMs / 3)));
    renewal.unref();
    const started = performance.now();
    try {
      const texts = batch.rows.map((row) => ({ id: textId(row), text: row.text }));
      const ref = await this.tasks.enqueue(this.task, { batchId: batch.batchId, texts }, { idempotencyKey: batch.batchId });
      const result = await this.resultOf(ref);
      this.metrics?.embedSeconds((performance.now() - started) / 1000);
      const problem = embeddingProblem(batch, result);
      if (problem) {
        await this.fail(batch, `search.invalid_embeddings: ${problem}`, log);
        return;
      }
      const { stored, skipped } = await storeBatch(this.db, batch, result);
      this.metrics?.batch('indexed');
      this.metrics?.rowsIndexed(stored);
      log.debug({ stored, skipped, ms: Math.round(performance.now() - started) }, 'batch indexed');
    } catch (error) {
      if (error instanceof TaskFailedError) {
        await this.fail(batch, `${error.code}: ${error.message}`, log);
      } else if (this.abandon.signal.aborted) {
        this.metrics?.batch('abandoned');
        log.warn('batch abandoned at shutdown; its rows return when their lease runs out');
      } else {
        this.metrics?.batch('error');
        log.error({ err: error }, 'batch failed unexpectedly; its rows return when their lease runs out');
      }
    } finally {
      clearInterval(renewal);
    }
  }

  /** Waits for the task's result however long its retries take (the lease is renewed meanwhile), until the batcher gives up. */
  private async resultOf(ref: TaskRef<EmbeddedBatch>): Promise<EmbeddedBatch> {
    for (;;) {
      try {
        return await untilAborted(ref.result({ timeoutMs: this.leaseMs }), this.abandon.signal);
      } catch (error) {
        if (!(error instanceof TaskTimeoutError)) throw error;
      }
    }
  }

  private async fail(batch: ClaimedBatch, error: string, log: Logger): Promise<void> {
    try {
      const failed = await failBatch(this.db, batch, error);
      this.metrics?.batch('failed');
      this.metrics?.rowsFailed(failed);
      log.error({ failed, error }, 'batch failed for good; its rows are marked failed until redriven');
    } catch (storeError) {
      this.metrics?.batch('error');
      log.error({ err: storeError, error }, 'marking a failed batch failed; its rows return when their lease runs out');
    }
  }
}
