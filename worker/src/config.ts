import { z } from 'zod';
import { baseEnv, envInt, envList } from '@civildiy/common';

/** worker environment (see .env.example). */
export const workerEnv = baseEnv.extend({
  WORKER_PORT: envInt(0, 65535).default(8108).describe('the port of the worker health and metrics endpoints'),
  WORKER_QUEUES: envList.default(['orders']).describe('comma-separated queues this process consumes (orders)'),
  WORKER_CONCURRENCY: envInt(1, 1000).default(10).describe('jobs run in parallel by this process'),
  PAYMENTS_URL: z.url().default('http://127.0.0.1:8003').describe('the payments provider base URL'),
  PAYMENTS_TIMEOUT_MS: envInt(100, 120_000).default(5_000).describe('timeout of one payments call (ms)'),
  PAYMENTS_BREAKER_FAILURES: envInt(1, 1000).default(5).describe('consecutive provider failures that open the circuit'),
  PAYMENTS_BREAKER_HALF_OPEN_MS: envInt(100, 600_000).default(10_000).describe('how long the circuit stays open before a trial call (ms)'),
  WORKER_LOCK_MS: envInt(1_000, 600_000).default(30_000).describe('job lock duration: a dead worker\'s job is taken over after about this long (ms)'),
  WORKER_STALLED_INTERVAL_MS: envInt(1_000, 600_000).default(30_000).describe('how often stalled jobs are looked for (ms)'),
});
export type WorkerConfig = z.infer<typeof workerEnv>;
