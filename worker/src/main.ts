import { loadConfigOrExit } from '@civildiy/common';
import { PaymentsClient } from '@civildiy/common/providers';
import { startRuntime } from '@civildiy/common/runtime';
import { listen } from '@civildiy/common/service';
import { TaskWorker } from '@civildiy/common/tasks';
import { buildApp } from './app.ts';
import { workerEnv } from './config.ts';
import { registerHandlers } from './handlers.ts';

const config = loadConfigOrExit(workerEnv);
const { logger, shutdown, bus, readiness } = await startRuntime({ service: 'worker', config });

const worker = new TaskWorker({
  connection: config.REDIS_BROKER_URL,
  prefix: config.REDIS_KEY_PREFIX,
  queues: config.WORKER_QUEUES,
  concurrency: config.WORKER_CONCURRENCY,
  lockDurationMs: config.WORKER_LOCK_MS,
  stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
  logger,
});
const payments = new PaymentsClient({
  baseUrl: config.PAYMENTS_URL,
  timeoutMs: config.PAYMENTS_TIMEOUT_MS,
  breaker: { consecutiveFailures: config.PAYMENTS_BREAKER_FAILURES, halfOpenAfterMs: config.PAYMENTS_BREAKER_HALF_OPEN_MS },
  logger,
});
registerHandlers(worker, { payments, events: bus, logger });
await worker.start();
shutdown.add('task worker', () => worker.close({ timeoutMs: Math.floor(config.SHUTDOWN_TIMEOUT_MS * 0.8) }));
logger.info({ queues: config.WORKER_QUEUES, concurrency: config.WORKER_CONCURRENCY }, 'worker consuming');

const app = await buildApp({ logger, readiness });
await listen(app, { port: config.WORKER_PORT, host: config.HOST, shutdown });
