import { embedBatch, processOrder } from '@civildiy/common/contracts';
import { EmbeddingsClient, PaymentsClient } from '@civildiy/common/providers';
import { defineService } from '@civildiy/common/runtime';
import { buildApp } from './app.ts';
import { workerEnv } from './config.ts';
import { registerHandlers } from './handlers.ts';

/** The dedicated task worker: `orders.process` (payments) and `search.embed` (embeddings), on the queues of `WORKER_QUEUES`. */
export const workerService = defineService({
  name: 'worker',
  env: workerEnv,
  build: async ({ config, logger, events, readiness }) => {
    const consumes = (queue: string) => (config.WORKER_QUEUES as readonly string[]).includes(queue);
    // Only the providers of the consumed queues get a client (with its circuit breaker and metrics).
    const orders = consumes(processOrder.queue)
      ? {
          payments: new PaymentsClient({
            baseUrl: config.PAYMENTS_URL,
            timeoutMs: config.PAYMENTS_TIMEOUT_MS,
            breaker: { consecutiveFailures: config.PAYMENTS_BREAKER_FAILURES, halfOpenAfterMs: config.PAYMENTS_BREAKER_HALF_OPEN_MS },
            logger,
          }),
          events: events.publisher,
        }
      : undefined;
    const embeddings = consumes(embedBatch.queue)
      ? new EmbeddingsClient({
          baseUrl: config.EMBEDDINGS_URL,
          model: config.EMBEDDINGS_MODEL,
          dimensions: config.EMBEDDINGS_DIMENSIONS,
          ...(config.EMBEDDINGS_API_KEY ? { apiKey: config.EMBEDDINGS_API_KEY } : {}),
          timeoutMs: config.EMBEDDINGS_TIMEOUT_MS,
          breaker: { consecutiveFailures: config.EMBEDDINGS_BREAKER_FAILURES, halfOpenAfterMs: config.EMBEDDINGS_BREAKER_HALF_OPEN_MS },
          logger,
        })
      : undefined;
    return {
      tasks: {
        queues: config.WORKER_QUEUES,
        concurrency: config.WORKER_CONCURRENCY,
        lockDurationMs: config.WORKER_LOCK_MS,
        stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
        handle: (worker) => registerHandlers(worker, { logger, ...(orders ? { orders } : {}), ...(embeddings ? { embeddings } : {}) }),
      },
      http: [{ app: await buildApp({ logger, readiness }), port: config.WORKER_PORT }],
    };
  },
});
