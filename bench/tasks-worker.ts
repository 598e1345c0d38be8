/**
 * The worker process of `bench/tasks.ts` (forked with IPC). It runs our `TaskWorker`, a bare
 * BullMQ `Worker` (`bare`), or a bare one with AsyncLocalStorage active (`bare-als`) on a no-op task
 * and answers the parent's commands:
 * - `{ cmd: 'drain', mode, prefix, queue, count, concurrency }`: consume `count` jobs, reply
 *   `{ ms, cpuUsPerJob }` (first handler call to last; CPU time of this process), then close the worker;
 * - `{ cmd: 'serve', mode, prefix, queue, concurrency }`: consume until `{ cmd: 'stop' }`, reply `{ serving: true }`;
 * - `{ cmd: 'exit' }`.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger, runWithContext } from '@civildiy/common';
import { TaskWorker } from '@civildiy/common/tasks';
import { benchNoop } from './tasks.ts';

type Mode = 'bare' | 'bare-als' | 'ours';
type Command =
  | { cmd: 'drain'; mode: Mode; prefix: string; queue: string; count: number; concurrency: number }
  | { cmd: 'serve'; mode: Mode; prefix: string; queue: string; concurrency: number }
  | { cmd: 'stop' }
  | { cmd: 'exit' };

const REDIS_URL = process.env.REDIS_BROKER_URL ?? 'redis://127.0.0.1:6379';
const logger = createLogger({ service: 'bench-worker', level: 'warn', pretty: false });
let stopServing: (() => Promise<void>) | undefined;

/** Starts a consumer calling `onJob` per job; returns its close function. */
async function startConsumer(mode: Mode, prefix: string, queue: string, concurrency: number, onJob: () => void): Promise<() => Promise<void>> {
  if (mode === 'ours') {
    const worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: [queue], concurrency, logger });
    worker.handle(benchNoop, (input) => {
      onJob();
      return { n: input.n };
    });
    await worker.start();
    return () => worker.close({ timeoutMs: 5_000 });
  }
  // `bare-als`: bare BullMQ in a process where AsyncLocalStorage is active, as it is in every one of
  // our services (the HTTP layer and the task worker both run work inside a request context). On
  // Node 20 that slows every promise in the process a little, whoever created it.
  if (mode === 'bare-als') runWithContext({ correlationId: 'bench' }, () => undefined);
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const worker = new Worker(
    queue,
    async (job) => {
      onJob();
      return { n: (job.data as { n: number }).n };
    },
    { connection, prefix, concurrency },
  );
  worker.on('error', (error) => logger.error({ err: error }, 'bare worker error'));
  await worker.waitUntilReady();
  return async () => {
    await worker.close();
    await connection.quit();
  };
}

process.on('message', (message: Command) => {
  void (async () => {
    if (message.cmd === 'exit') {
      await stopServing?.();
      process.exit(0);
    }
    if (message.cmd === 'stop') {
      await stopServing?.();
      stopServing = undefined;
      process.send!({ stopped: true });
      return;
    }
    if (message.cmd === 'serve') {
      stopServing = await startConsumer(message.mode, message.prefix, message.queue, message.concurrency, () => {});
      process.send!({ serving: true });
      return;
    }
    let seen = 0;
    let first = 0;
    let firstCpu = process.cpuUsage();
    let resolveDone!: (result: { ms: number; cpuUsPerJob: number }) => void;
    const done = new Promise<{ ms: number; cpuUsPerJob: number }>((resolve) => (resolveDone = resolve));
    const close = await startConsumer(message.mode, message.prefix, message.queue, message.concurrency, () => {
      if (seen === 0) {
        first = performance.now();
        firstCpu = process.cpuUsage();
      }
      seen += 1;
      if (seen === message.count) {
        const cpu = process.cpuUsage(firstCpu);
        resolveDone({ ms: performance.now() - first, cpuUsPerJob: (cpu.user + cpu.system) / (message.count - 1) });
      }
    });
    const result = await done;
    await close();
    process.send!(result);
  })().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
});

process.send!({ ready: true });
