import type { Registry } from 'prom-client';
import { EmbeddingBatcher } from './embedding-batcher.ts';
import type { ModelFiles } from './model-files.ts';
import { modelMetrics, type ModelMetrics } from './model-metrics.ts';
import { SentenceEncoder } from './sentence-encoder.ts';
import { SentenceTokenizer } from './sentence-tokenizer.ts';

/** How the model takes requests (the `EMBEDDINGS_MODEL_*` variables). */
export interface SentenceModelSettings {
  /** ONNX Runtime's intra-op threads. Default 1. */
  threads?: number;
  /** Texts per batch at most. Default 32. */
  maxBatch?: number;
  /** How long a batch's first text waits for others, in ms. Default 5. */
  batchWaitMs?: number;
  /** Texts waiting at most before requests are refused with 429. Default 2048. */
  maxQueued?: number;
  /** A request not answered within this many ms gets 503. Default 30,000. */
  timeoutMs?: number;
  /** Default: prom-client's global registry. */
  metricsRegistry?: Registry;
  /** Called when the model's thread dies (the model is then unusable). */
  onExit?: (error: Error) => void;
}

/** The vectors of one {@link SentenceModel.embed} call. */
export interface SentenceEmbeddings {
  /** One unit vector per text, in order. */
  vectors: Float64Array[];
  /** Tokens embedded, `[CLS]` and `[SEP]` included, after truncation. */
  tokens: number;
}

/**
 * all-MiniLM-L6-v2 as sentence-transformers runs it: WordPiece tokens (at most 256), the
 * transformer, the mean of the token vectors, L2 normalisation. Texts of concurrent calls are
 * batched ({@link EmbeddingBatcher}); the model runs on a thread of its own ({@link SentenceEncoder}).
 */
export class SentenceModel {
  private constructor(
    private readonly tokenizer: SentenceTokenizer,
    private readonly encoder: SentenceEncoder,
    private readonly batcher: EmbeddingBatcher,
    private readonly metrics: ModelMetrics,
  ) {}

  /** Loads the tokenizer and the model (checked files: see `locateModelFiles`) and runs the model once. */
  static async load(files: Pick<ModelFiles, 'onnx' | 'tokenizer'>, settings: SentenceModelSettings = {}): Promise<SentenceModel> {
    const tokenizer = await SentenceTokenizer.open(files.tokenizer);
    const encoder = await SentenceEncoder.open(files.onnx, { threads: settings.threads ?? 1, ...(settings.onExit ? { onExit: settings.onExit } : {}) });
    const metrics = modelMetrics(settings.metricsRegistry);
    const batcher = new EmbeddingBatcher({
      encode: (sequences) => encoder.encode(sequences),
      maxBatch: settings.maxBatch ?? 32,
      batchWaitMs: settings.batchWaitMs ?? 5,
      maxQueued: settings.maxQueued ?? 2048,
      timeoutMs: settings.timeoutMs ?? 30_000,
      metrics,
    });
    return new SentenceModel(tokenizer, encoder, batcher, metrics);
  }

  /** The vector length (384). */
  get dimensions(): number {
    return this.encoder.dimensions;
  }

  /** Texts waiting for the model. */
  get queued(): number {
    return this.batcher.queued;
  }

  /**
   * Embeds `texts` (each cut to 256 tokens), in order.
   * @param options.signal - the caller left: its texts leave the queue.
   * @throws QueueFullError, ModelTimeoutError, RequestCancelledError (see {@link EmbeddingBatcher}).
   */
  async embed(texts: readonly string[], options: { signal?: AbortSignal } = {}): Promise<SentenceEmbeddings> {
    const encoded = texts.map((text) => this.tokenizer.encode(text));
    const sequences = encoded.map(({ ids }) => ids);
    const tokens = sequences.reduce((sum, ids) => sum + ids.length, 0);
    const vectors = await this.batcher.submit(sequences, options);
    this.metrics.texts.inc(texts.length);
    this.metrics.tokens.inc(tokens);
    const truncated = encoded.filter((text) => text.truncated).length;
    if (truncated > 0) this.metrics.truncated.inc(truncated);
    return { vectors, tokens };
  }

  /** Refuses what waits and stops the model's thread. */
  async close(): Promise<void> {
    this.batcher.close();
    await this.encoder.close();
  }
}
