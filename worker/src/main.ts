import { createLogger, loadConfigOrExit } from '@civildiy/common';
import { RedisStreamsEventBus } from '@civildiy/common/events';
import { PaymentsClient } from '@civildiy/common/providers';
import { createRedis } from '@civildiy/common/redis';
import { Shutdown, listen } from '@civildiy/common/service';
import { TaskWorker } from '@civildiy/common/tasks';
import { buildApp } from './app.ts';
import { workerEnv } from './config.ts';
import { registerHandlers } from './handlers.ts';

const config = loadConfigOrExit(workerEnv);
const logger = createLogger({ service: 'worker', level: config.LOG_LEVEL });
const shutdown = new Shutdown(logger, config.SHUTDOWN_TIMEOUT_MS);
shutdown.installSignalHandlers();

const redis = createRedis(config.REDIS_BROKER_URL, { name: 'worker', logger });
shutdown.add('redis', () => redis.quit());
const bus = new RedisStreamsEventBus({ connection: redis, prefix: `${config.REDIS_KEY_PREFIX}:`, logger });
shutdown.add('event bus', () => bus.close());

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

const app = await buildApp({ logger, readiness: { redis: () => redis.ping() } });
await listen(app, { port: config.WORKER_PORT, host: config.HOST, shutdown });
