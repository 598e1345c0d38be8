import { z } from 'zod';
import { baseEnv, envInt, envList } from '@civildiy/common';

/** The queues a worker process can consume: each has its handler here. */
export const WORKER_QUEUE_NAMES = ['orders', 'embeddings'] as const;

/** worker environment (see .env.example). */
export const workerEnv = baseEnv.extend({
  WORKER_PORT: envInt(0, 65535).default(8108).describe('the port of the worker health and metrics endpoints'),
  WORKER_QUEUES: envList
    .pipe(z.array(z.enum(WORKER_QUEUE_NAMES)).min(1))
    .default(['orders', 'embeddings'])
    .describe('comma-separated queues this process consumes: orders (orders.process), embeddings (search.embed)'),
  WORKER_CONCURRENCY: envInt(1, 1000).default(10).describe('jobs run in parallel by this process (per queue)'),
  PAYMENTS_URL: z.url().default('http://127.0.0.1:8003').describe('the payments provider base URL'),
  PAYMENTS_TIMEOUT_MS: envInt(100, 120_000).default(5_000).describe('timeout of one payments call (ms)'),
  PAYMENTS_BREAKER_FAILURES: envInt(1, 1000).default(5).describe('consecutive provider failures that open the circuit'),
  PAYMENTS_BREAKER_HALF_OPEN_MS: envInt(100, 600_000).default(10_000).describe('how long the circuit stays open before a trial call (ms)'),
  EMBEDDINGS_URL: z
    .url()
    .default('http://127.0.0.1:8001')
    .describe('the base URL of an OpenAI-compatible embeddings API (POST <url>/v1/embeddings): the mock provider, a hosted API or a local model server'),
  EMBEDDINGS_MODEL: z.string().min(1).default('civildiy-hash-embed-1').describe('the embeddings model to ask for'),
  EMBEDDINGS_API_KEY: z.string().min(1).optional().describe('sent as Authorization: Bearer <key> to the embeddings API (unset: no header)'),
  EMBEDDINGS_DIMENSIONS: envInt(1, 16_384)
    .default(256)
    .describe("the vector length: sent as the request's dimensions, and an answer of another length fails the batch for good"),
  EMBEDDINGS_TIMEOUT_MS: envInt(100, 120_000).default(10_000).describe('timeout of one embeddings call (ms)'),
  EMBEDDINGS_BREAKER_FAILURES: envInt(1, 1000).default(5).describe('consecutive embeddings provider failures that open its circuit'),
  EMBEDDINGS_BREAKER_HALF_OPEN_MS: envInt(100, 600_000)
    .default(10_000)
    .describe('how long the embeddings circuit stays open before a trial call (ms); meanwhile search.embed attempts fail fast and retry with backoff'),
  WORKER_LOCK_MS: envInt(1_000, 600_000).default(30_000).describe('job lock duration: a dead worker\'s job is taken over after about this long (ms)'),
  WORKER_STALLED_INTERVAL_MS: envInt(1_000, 600_000).default(30_000).describe('how often stalled jobs are looked for (ms)'),
});
export type WorkerConfig = z.infer<typeof workerEnv>;
