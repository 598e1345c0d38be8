import type { EventEmitter } from 'node:events';
import type { Registry } from 'prom-client';
import { EmbeddingBatcher, type SentenceEmbeddings } from './embedding-batcher.ts';
import { MODEL_DIMENSIONS } from './model-artifact.ts';
import type { ModelFiles } from './model-files.ts';
import { modelMetrics, type ModelMetrics } from './model-metrics.ts';
import { ModelProcess } from './model-process.ts';
import { OnDemandModel, type OnDemandEvents, type OnDemandStatus } from './on-demand-model.ts';

export type { SentenceEmbeddings } from './embedding-batcher.ts';

/** How the model takes requests, loads and unloads (the `EMBEDDINGS_MODEL_*` variables). */
export interface SentenceModelSettings {
  /** ONNX Runtime's intra-op threads. Default 1 (the local stack shares two cores among a dozen processes). */
  threads?: number;
  /** Texts per batch at most. Default 32. */
  maxBatch?: number;
  /** How long a batch's first text waits for others, in ms. Default 5. */
  batchWaitMs?: number;
  /** Texts waiting at most before requests are refused with 429. Default 2048. */
  maxQueued?: number;
  /** A request not answered within this many ms (its wait for a load included) gets 503. Default 30,000. */
  timeoutMs?: number;
  /** How long the model stays loaded after its last request, in ms; `-1`: for good. Default 300,000 (5 minutes). */
  keepAliveMs?: number;
  /** The wait before loading again after a failed load, in ms, doubled after each further failure up to 30 s. Default 1,000. */
  retryAfterFailureMs?: number;
  /** Default: prom-client's global registry. */
  metricsRegistry?: Registry;
}

/** The longest wait between failed loads. */
const MAX_RETRY_AFTER_FAILURE_MS = 30_000;

/**
 * all-MiniLM-L6-v2 as sentence-transformers runs it: WordPiece tokens (at most 256), the
 * transformer, the mean of the token vectors, L2 normalisation. Texts of concurrent calls are
 * batched ({@link EmbeddingBatcher}); the model runs in a process of its own ({@link ModelProcess}),
 * started by the first batch and stopped `keepAliveMs` after the last ({@link OnDemandModel}).
 */
export class SentenceModel {
  private readonly model: OnDemandModel<ModelProcess>;
  private readonly batcher: EmbeddingBatcher;
  private readonly metrics: ModelMetrics;

  /** The model for checked files (see `locateModelFiles`), not loaded yet: the first {@link embed} (or {@link preload}) loads it. */
  constructor(files: Pick<ModelFiles, 'onnx' | 'tokenizer'>, settings: SentenceModelSettings = {}) {
    this.metrics = modelMetrics(settings.metricsRegistry);
    this.model = new OnDemandModel<ModelProcess>({
      load: async (signal, onExit) => {
        const started = await ModelProcess.start(files, { threads: settings.threads ?? 1, signal, onExit });
        if (started.dimensions !== MODEL_DIMENSIONS) {
          await started.stop();
          throw new Error(`${files.onnx} gives ${started.dimensions}-dimensional vectors, not ${MODEL_DIMENSIONS}`);
        }
        return started;
      },
      keepAliveMs: settings.keepAliveMs ?? 300_000,
      retryAfterFailureMs: settings.retryAfterFailureMs ?? 1_000,
      maxRetryAfterFailureMs: MAX_RETRY_AFTER_FAILURE_MS,
      metrics: this.metrics,
    });
    this.batcher = new EmbeddingBatcher({
      encode: async (texts) => {
        const batch = await this.model.use((process) => process.encode(texts));
        if (batch.truncated > 0) this.metrics.truncated.inc(batch.truncated);
        return batch;
      },
      maxBatch: settings.maxBatch ?? 32,
      batchWaitMs: settings.batchWaitMs ?? 5,
      maxQueued: settings.maxQueued ?? 2048,
      timeoutMs: settings.timeoutMs ?? 30_000,
      metrics: this.metrics,
    });
  }

  /** The vector length (384). */
  get dimensions(): number {
    return MODEL_DIMENSIONS;
  }

  /** Whether the model is loaded, loading, unloading, unloaded or failed its last load. */
  get status(): OnDemandStatus {
    return this.model.status;
  }

  /** The id of the model's process while it is loaded. */
  get pid(): number | undefined {
    return this.model.current?.pid;
  }

  /** Tells when the model starts loading, is loaded, fails to load and is unloaded. */
  get events(): EventEmitter<OnDemandEvents> {
    return this.model;
  }

  /** Texts waiting for the model. */
  get queued(): number {
    return this.batcher.queued;
  }

  /**
   * Loads the model now (as the first request would), unless it is loaded.
   * @throws ModelLoadError when it cannot be loaded.
   */
  preload(): Promise<void> {
    return this.model.preload();
  }

  /**
   * Embeds `texts` (each cut to 256 tokens), in order, loading the model first when it is not.
   * @param options.signal - the caller left: its texts leave the queue.
   * @throws QueueFullError, ModelTimeoutError, RequestCancelledError (see {@link EmbeddingBatcher}),
   *   ModelLoadError (see {@link OnDemandModel}), ModelStoppedError.
   */
  async embed(texts: readonly string[], options: { signal?: AbortSignal } = {}): Promise<SentenceEmbeddings> {
    const embeddings = await this.batcher.submit(texts, options);
    this.metrics.texts.inc(texts.length);
    this.metrics.tokens.inc(embeddings.tokens);
    return embeddings;
  }

  /** Refuses what waits, ends a load under way and stops the model's process. */
  async close(): Promise<void> {
    this.batcher.close();
    await this.model.close();
  }
}
