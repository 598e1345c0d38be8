import { baseEnv, envBool, envInt } from '@civildiy/common';
import { z } from 'zod';
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
