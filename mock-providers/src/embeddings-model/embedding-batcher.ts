import { ModelLoadError, ModelStoppedError, ModelTimeoutError, QueueFullError, RequestCancelledError } from './model-errors.ts';
import type { ModelMetrics } from './model-metrics.ts';
import type { EncodedBatch } from './model-process.ts';

/** The vectors of one {@link EmbeddingBatcher.submit} call. */
export interface SentenceEmbeddings {
  /** One unit vector per text, in order. */
  vectors: Float64Array[];
  /** Tokens embedded, `[CLS]` and `[SEP]` included, after truncation. */
  tokens: number;
}

/** Options of {@link EmbeddingBatcher}. */
export interface EmbeddingBatcherOptions {
  /** Runs the model on a batch of texts, loading it first when it is not (one at a time: the batcher has at most one batch out). */
  encode: (texts: string[]) => Promise<EncodedBatch>;
  /** Texts in one batch at most. */
  maxBatch: number;
  /** How long the first text of a batch waits for others when fewer than `maxBatch` are queued, in ms. */
  batchWaitMs: number;
  /** Texts waiting at most; a request that would go past it is refused (unless the queue is empty). */
  maxQueued: number;
  /** A request not answered within this many ms is refused with {@link ModelTimeoutError}. */
  timeoutMs: number;
  metrics: ModelMetrics;
}

/** One request in the queue: its texts, how many were taken into batches, its vectors so far. */
interface Job {
  texts: readonly string[];
  /** The next text not yet taken into a batch. */
  next: number;
  vectors: Float64Array[];
  tokens: number;
  remaining: number;
  enqueuedAt: number;
  done: boolean;
  resolve: (embeddings: SentenceEmbeddings) => void;
  reject: (error: Error) => void;
  release: () => void;
}

/** The model's pace before any batch has run, in ms per text (a 100-token text on one core). */
const INITIAL_MS_PER_TEXT = 30;

/**
 * Collects the texts of concurrent requests into batches for the model: a batch starts when
 * `maxBatch` texts wait, or `batchWaitMs` after its first text arrived; requests are served in
 * arrival order, a large one across several batches. The queue is bounded (`maxQueued` texts:
 * {@link QueueFullError}, with a `Retry-After` estimated from the texts ahead), each request has a
 * deadline ({@link ModelTimeoutError}), and a request whose caller leaves (its signal) leaves the
 * queue at once.
 */
export class EmbeddingBatcher {
  private readonly queue: Job[] = [];
  private queuedTexts = 0;
  private inFlight = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private msPerText = INITIAL_MS_PER_TEXT;
  private closed = false;

  constructor(private readonly options: EmbeddingBatcherOptions) {}

  /** Texts waiting for a batch. */
  get queued(): number {
    return this.queuedTexts;
  }

  /**
   * The unit vectors of `texts`, in order, once the model has run them.
   * @throws QueueFullError at once when the queue has no room for them.
   * @throws ModelTimeoutError, RequestCancelledError (`signal`), or the model's failure (ModelLoadError, ModelStoppedError, …).
   */
  submit(texts: readonly string[], options: { signal?: AbortSignal } = {}): Promise<SentenceEmbeddings> {
    if (this.closed) return Promise.reject(new ModelStoppedError('The embeddings provider is stopping'));
    if (texts.length === 0) return Promise.resolve({ vectors: [], tokens: 0 });
    if (this.queuedTexts > 0 && this.queuedTexts + texts.length > this.options.maxQueued) {
      this.options.metrics.refused.inc({ reason: 'queue_full' });
      return Promise.reject(new QueueFullError(this.retryAfterSeconds(), this.queuedTexts));
    }
    return new Promise<SentenceEmbeddings>((resolve, reject) => {
      const timeout = AbortSignal.timeout(this.options.timeoutMs);
      const ended = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
      const job: Job = {
        texts,
        next: 0,
        vectors: new Array<Float64Array>(texts.length),
        tokens: 0,
        remaining: texts.length,
        enqueuedAt: performance.now(),
        done: false,
        resolve,
        reject,
        release: () => ended.removeEventListener('abort', onEnd),
      };
      const onEnd = () => {
        const timedOut = timeout.aborted;
        this.options.metrics.refused.inc({ reason: timedOut ? 'timeout' : 'cancelled' });
        this.end(job, timedOut ? new ModelTimeoutError(this.options.timeoutMs, this.retryAfterSeconds()) : new RequestCancelledError('The caller went away'));
      };
      if (ended.aborted) {
        onEnd();
        return;
      }
      ended.addEventListener('abort', onEnd, { once: true });
      this.queue.push(job);
      this.queuedTexts += texts.length;
      this.options.metrics.queued.set(this.queuedTexts);
      this.schedule();
    });
  }

  /** Refuses every queued request and takes no more; a batch under way still answers. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const job of [...this.queue]) this.end(job, new ModelStoppedError('The embeddings provider is stopping'));
  }

  /** Seconds until the texts ahead have probably run, at least 1. */
  private retryAfterSeconds(): number {
    return Math.min(60, Math.max(1, Math.ceil(((this.queuedTexts + this.inFlight) * this.msPerText) / 1000)));
  }

  private schedule(): void {
    if (this.running || this.closed || this.queue.length === 0) return;
    const waited = performance.now() - this.queue[0]!.enqueuedAt;
    if (this.queuedTexts >= this.options.maxBatch || waited >= this.options.batchWaitMs) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.runBatch();
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, this.options.batchWaitMs - waited);
    }
  }

  private async runBatch(): Promise<void> {
    this.running = true;
    const taken: { job: Job; index: number }[] = [];
    while (taken.length < this.options.maxBatch && this.queue.length > 0) {
      const job = this.queue[0]!;
      while (job.next < job.texts.length && taken.length < this.options.maxBatch) taken.push({ job, index: job.next++ });
      if (job.next === job.texts.length) this.queue.shift();
    }
    this.queuedTexts -= taken.length;
    this.inFlight = taken.length;
    this.options.metrics.queued.set(this.queuedTexts);
    try {
      const { vectors, tokens, ms } = await this.options.encode(taken.map(({ job, index }) => job.texts[index]!));
      this.options.metrics.batchSize.observe(taken.length);
      this.options.metrics.batchSeconds.observe(ms / 1000);
      this.msPerText = 0.8 * this.msPerText + 0.2 * (ms / taken.length);
      taken.forEach(({ job, index }, i) => {
        if (job.done) return;
        job.vectors[index] = vectors[i]!;
        job.tokens += tokens[i]!;
        job.remaining -= 1;
        if (job.remaining === 0) {
          this.options.metrics.requestSeconds.observe((performance.now() - job.enqueuedAt) / 1000);
          this.end(job);
        }
      });
    } catch (error) {
      for (const job of new Set(taken.map(({ job }) => job))) {
        if (job.done) continue;
        this.options.metrics.refused.inc({ reason: error instanceof ModelLoadError ? 'load_failed' : 'failed' });
        this.end(job, error as Error);
      }
    } finally {
      this.inFlight = 0;
      this.running = false;
      this.schedule();
    }
  }

  /** Answers a job (with its vectors, or `error`) and takes whatever of it still waits out of the queue. */
  private end(job: Job, error?: Error): void {
    if (job.done) return;
    job.done = true;
    job.release();
    const position = this.queue.indexOf(job);
    if (position >= 0) {
      this.queue.splice(position, 1);
      this.queuedTexts -= job.texts.length - job.next;
      this.options.metrics.queued.set(this.queuedTexts);
    }
    if (error) job.reject(error);
    else job.resolve({ vectors: job.vectors, tokens: job.tokens });
  }
}
