import { reuseMetric } from '@civildiy/common/service';
import { Counter, Gauge, Histogram, register, type Registry } from 'prom-client';

/** Why a request to the model got no vectors. */
export type ModelRefusal = 'queue_full' | 'timeout' | 'cancelled' | 'load_failed' | 'failed';

/** The model provider's metrics (`civildiy_embeddings_model_*`), shared by every batcher on a registry. */
export interface ModelMetrics {
  /** Texts per batch run by the model. */
  batchSize: Histogram;
  /** Time the model spent on one batch. */
  batchSeconds: Histogram;
  /** From a request's arrival in the queue to its last vector. */
  requestSeconds: Histogram;
  /** Tokens embedded (`[CLS]` and `[SEP]` included, after truncation). */
  tokens: Counter;
  /** Texts embedded. */
  texts: Counter;
  /** Texts cut to the model's 256 tokens. */
  truncated: Counter;
  /** Requests answered without vectors, by reason. */
  refused: Counter<'reason'>;
  /** Texts waiting for the model. */
  queued: Gauge;
  /** 1 while the model is loaded (its process runs), else 0. */
  loaded: Gauge;
  /** Loads of the model, by outcome. */
  loads: Counter<'outcome'>;
  /** Time from a load's start to the model answering. */
  loadSeconds: Histogram;
  /** Unloads of the model, by reason. */
  unloads: Counter<'reason'>;
}

/** The metrics on `registry` (created once per registry). */
export function modelMetrics(registry: Registry = register): ModelMetrics {
  const registers = [registry];
  return {
    batchSize: reuseMetric(registry, 'civildiy_embeddings_model_batch_size', () =>
      new Histogram({ name: 'civildiy_embeddings_model_batch_size', help: 'Texts per batch run by the embedding model', buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers }),
    ),
    batchSeconds: reuseMetric(registry, 'civildiy_embeddings_model_batch_seconds', () =>
      new Histogram({
        name: 'civildiy_embeddings_model_batch_seconds',
        help: 'Time the embedding model spent on one batch',
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers,
      }),
    ),
    requestSeconds: reuseMetric(registry, 'civildiy_embeddings_model_request_seconds', () =>
      new Histogram({
        name: 'civildiy_embeddings_model_request_seconds',
        help: 'Time from an embeddings request entering the queue to its last vector (queueing included)',
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers,
      }),
    ),
    tokens: reuseMetric(registry, 'civildiy_embeddings_model_tokens_total', () =>
      new Counter({ name: 'civildiy_embeddings_model_tokens_total', help: 'Tokens embedded by the model ([CLS] and [SEP] included, after truncation)', registers }),
    ),
    texts: reuseMetric(registry, 'civildiy_embeddings_model_texts_total', () =>
      new Counter({ name: 'civildiy_embeddings_model_texts_total', help: 'Texts embedded by the model', registers }),
    ),
    truncated: reuseMetric(registry, 'civildiy_embeddings_model_truncated_texts_total', () =>
      new Counter({ name: 'civildiy_embeddings_model_truncated_texts_total', help: "Texts cut to the model's maximum length", registers }),
    ),
    refused: reuseMetric(registry, 'civildiy_embeddings_model_refused_total', () =>
      new Counter({
        name: 'civildiy_embeddings_model_refused_total',
        help: 'Embeddings requests answered without vectors: queue_full (429), timeout (503), cancelled (the client left), load_failed (503: the model could not be loaded), failed (the model failed or its process exited)',
        labelNames: ['reason'] as const,
        registers,
      }),
    ),
    queued: reuseMetric(registry, 'civildiy_embeddings_model_queued_texts', () =>
      new Gauge({ name: 'civildiy_embeddings_model_queued_texts', help: 'Texts waiting for the embedding model', registers }),
    ),
    loaded: reuseMetric(registry, 'civildiy_embeddings_model_loaded', () =>
      new Gauge({ name: 'civildiy_embeddings_model_loaded', help: 'Whether the embedding model is loaded (1) or not (0): it loads on demand and unloads when idle', registers }),
    ),
    loads: reuseMetric(registry, 'civildiy_embeddings_model_loads_total', () =>
      new Counter({
        name: 'civildiy_embeddings_model_loads_total',
        help: 'Loads of the embedding model: succeeded, or failed (the requests waiting got 503 model_load_failed)',
        labelNames: ['outcome'] as const,
        registers,
      }),
    ),
    loadSeconds: reuseMetric(registry, 'civildiy_embeddings_model_load_seconds', () =>
      new Histogram({
        name: 'civildiy_embeddings_model_load_seconds',
        help: "Time to load the embedding model (its process started, the model read and run once)",
        buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
        registers,
      }),
    ),
    unloads: reuseMetric(registry, 'civildiy_embeddings_model_unloads_total', () =>
      new Counter({
        name: 'civildiy_embeddings_model_unloads_total',
        help: 'Unloads of the embedding model: idle (EMBEDDINGS_MODEL_KEEP_ALIVE_MS without a request), exited (its process died), stopped (the provider stopped)',
        labelNames: ['reason'] as const,
        registers,
      }),
    ),
  };
}
