import { loadConfigOrExit } from '@civildiy/common';
import { embedBatch, processOrder } from '@civildiy/common/contracts';
import { EmbeddingsClient, PaymentsClient } from '@civildiy/common/providers';
import { startRuntime } from '@civildiy/common/runtime';
import { listen } from '@civildiy/common/service';
import { TaskWorker } from '@civildiy/common/tasks';
import { buildApp } from './app.ts';
import { workerEnv } from './config.ts';
import { registerHandlers } from './handlers.ts';

const config = loadConfigOrExit(workerEnv);
const { logger, shutdown, events, readiness } = await startRuntime({ service: 'worker', config });
const consumes = (queue: string) => (config.WORKER_QUEUES as readonly string[]).includes(queue);

const worker = new TaskWorker({
  connection: config.REDIS_BROKER_URL,
  prefix: config.REDIS_KEY_PREFIX,
  queues: config.WORKER_QUEUES,
  concurrency: config.WORKER_CONCURRENCY,
  lockDurationMs: config.WORKER_LOCK_MS,
  stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
  logger,
});
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
registerHandlers(worker, { logger, ...(orders ? { orders } : {}), ...(embeddings ? { embeddings } : {}) });
await worker.start();
shutdown.add('task worker', () => worker.close({ timeoutMs: Math.floor(config.SHUTDOWN_TIMEOUT_MS * 0.8) }));
logger.info({ queues: config.WORKER_QUEUES, concurrency: config.WORKER_CONCURRENCY }, 'worker consuming');

const app = await buildApp({ logger, readiness });
await listen(app, { port: config.WORKER_PORT, host: config.HOST, shutdown });
