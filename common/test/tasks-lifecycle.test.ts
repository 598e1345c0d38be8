import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TaskClient, TaskWorker, defineTask } from '../src/tasks/index.ts';
import { FAST_LOCKS, crashTask } from './fixtures/tasks-crash-contract.ts';
import { REDIS_URL, deferred, quietLogger, removePrefix, uniquePrefix } from './fixtures/tasks-support.ts';
import { TYPESCRIPT_NODE_ARGS } from '@civildiy/common/testing';

const prefix = uniquePrefix('lifecycle');
const registry = new Registry();
const here = path.dirname(fileURLToPath(import.meta.url));
const repositoryRoot = path.resolve(here, '../..');

const gated = defineTask({ name: 'test.gated', queue: 'q-gated', input: z.object({ n: z.number() }), output: z.object({ n: z.number(), attempt: z.number() }) });

let client: TaskClient;
const cleanups: (() => Promise<void>)[] = [];

function newWorker(queues: string[]): TaskWorker {
  const worker = new TaskWorker({ connection: REDIS_URL, prefix, queues, concurrency: 2, ...FAST_LOCKS, logger: quietLogger(), registry });
  cleanups.push(() => worker.close({ timeoutMs: 500 }));
  return worker;
}

/** The next stdout line of `child` matching `pattern`. */
function lineFrom(child: ChildProcess, pattern: RegExp): Promise<RegExpExecArray> {
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`worker process exited (${code}) before printing ${pattern}`)));
    lines.on('line', (line) => {
      const match = pattern.exec(line);
      if (match) {
        lines.close();
        resolve(match);
      }
    });
  });
}

beforeAll(() => {
  client = new TaskClient({ connection: REDIS_URL, prefix, logger: quietLogger(), registry });
});

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

afterAll(async () => {
  await client?.close();
  await removePrefix(prefix);
});

describe('worker lifecycle', () => {
  it('close() stops taking jobs but waits for the running one to finish', async () => {
    const worker = newWorker(['q-gated']);
    const started = deferred();
    const gate = deferred();
    worker.handle(gated, async (input, ctx) => {
      started.resolve();
      await gate.promise;
      return { n: input.n, attempt: ctx.attempt };
    });
    await worker.start();
    const running = await client.enqueue(gated, { n: 1 });
    await started.promise;

    let closed = false;
    const closing = worker.close({ timeoutMs: 10_000 }).then(() => (closed = true));
    const queued = await client.enqueue(gated, { n: 2 });
    // The job is still active in Redis and close() has not returned.
    expect(await client.queue('q-gated').getActiveCount()).toBe(1);
    expect(closed).toBe(false);
    expect(worker.runningCount).toBe(1);

    gate.resolve();
    await closing;
    await expect(running.result({ timeoutMs: 5_000 })).resolves.toEqual({ n: 1, attempt: 1 });
    // Enqueued after close began: not taken.
    expect(await client.queue('q-gated').getJobState(queued.id)).toBe('waiting');

    const next = newWorker(['q-gated']);
    next.handle(gated, (input, ctx) => ({ n: input.n, attempt: ctx.attempt }));
    await next.start();
    await expect(queued.result({ timeoutMs: 5_000 })).resolves.toEqual({ n: 2, attempt: 1 });
  });

  it('past its grace period, close() aborts the running job and hands it back without using an attempt', async () => {
    const worker = newWorker(['q-gated']);
    const started = deferred<AbortSignal>();
    worker.handle(gated, async (_input, ctx) => {
      started.resolve(ctx.signal);
      await new Promise(() => {}); // ignores its signal
      return { n: 0, attempt: ctx.attempt };
    });
    await worker.start();
    const ref = await client.enqueue(gated, { n: 3 });
    const signal = await started.promise;

    await worker.close({ timeoutMs: 200 });
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).name).toBe('WorkerShutdownError');
    expect(await client.queue('q-gated').getJobState(ref.id)).toBe('waiting');

    const next = newWorker(['q-gated']);
    next.handle(gated, (input, ctx) => ({ n: input.n, attempt: ctx.attempt }));
    await next.start();
    await expect(ref.result({ timeoutMs: 5_000 })).resolves.toEqual({ n: 3, attempt: 1 });
  });

  it('a worker process killed mid-job loses its lock and another worker completes the job', async () => {
    const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, path.join(here, 'fixtures/tasks-crash-worker.ts')], {
      cwd: repositoryRoot,
      env: { ...process.env, TASKS_PREFIX: prefix, REDIS_BROKER_URL: REDIS_URL },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await lineFrom(child, /^ready$/);
    const ref = await client.enqueue(crashTask, { n: 1 });
    const [, startedId] = await lineFrom(child, /^started (\S+)$/);
    expect(startedId).toBe(ref.id);

    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    expect(await client.queue(crashTask.queue).getJobState(ref.id)).toBe('active');

    const survivor = newWorker([crashTask.queue]);
    survivor.handle(crashTask, (_input, ctx) => ({ by: 'survivor', attempt: ctx.attempt }));
    await survivor.start();
    // Recovered through BullMQ's stalled-job check: a crash does not use up an attempt.
    await expect(ref.result({ timeoutMs: 15_000 })).resolves.toEqual({ by: 'survivor', attempt: 1 });
  });
});
