import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { currentContext, runWithContext } from '../src/context/index.ts';
import { PermanentError, ValidationError } from '../src/errors/index.ts';
import { derivedId } from '../src/ids/index.ts';
import { createLogger } from '../src/logging/index.ts';
import { createRedis, type Redis } from '../src/redis/index.ts';
import {
  TaskClient,
  TaskFailedError,
  TaskTimeoutError,
  TaskWorker,
  defineTask,
  jobOptionsFor,
  taskMetrics,
  type TaskHandlerContext,
  type TaskJobData,
} from '../src/tasks/index.ts';
import { REDIS_URL, quietLogger, removePrefix, uniquePrefix } from './fixtures/tasks-support.ts';

const prefix = uniquePrefix('queue');
const registry = new Registry();
const logLines: Record<string, unknown>[] = [];
const capturingLogger = createLogger({
  service: 'tasks-test',
  level: 'debug',
  pretty: false,
  destination: new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  }),
});

const Numbers = z.object({ n: z.number().int() });
const fast = { attempts: 3, backoff: { delayMs: 10, jitter: 0.5 } };

const flaky = defineTask({ name: 'test.flaky', queue: 'q-flaky', input: Numbers, output: z.object({ n: z.number(), attempt: z.number() }), retry: fast });
const declined = defineTask({ name: 'test.declined', queue: 'q-declined', input: Numbers, output: z.object({}), retry: fast });
const strict = defineTask({ name: 'test.strict', queue: 'q-strict', input: z.object({ email: z.email() }), output: z.object({}), retry: fast });
const once = defineTask({ name: 'test.once', queue: 'q-once', input: Numbers, output: z.object({ run: z.number() }), retry: fast });
const quick = defineTask({ name: 'test.quick', queue: 'q-quick', input: Numbers, output: z.object({ doubled: z.number() }) });
const slow = defineTask({ name: 'test.slow', queue: 'q-slow', input: Numbers, output: z.object({ attempt: z.number() }), retry: { attempts: 2, backoff: { delayMs: 10 } }, timeoutMs: 150 });
const liar = defineTask({ name: 'test.liar', queue: 'q-liar', input: Numbers, output: z.object({ ok: z.literal(true) }), retry: { attempts: 2, backoff: { delayMs: 10 } } });
const orphan = defineTask({ name: 'test.orphan', queue: 'q-quick', input: Numbers, output: z.object({}) });
const unworked = defineTask({ name: 'test.unworked', queue: 'q-nobody', input: Numbers, output: z.object({}) });
const traced = defineTask({ name: 'test.traced', queue: 'q-traced', input: Numbers, output: z.object({ correlationId: z.string(), causationId: z.string().optional(), userId: z.string().optional() }) });

let redis: Redis;
let client: TaskClient;
let worker: TaskWorker;
const calls = { flaky: 0, declined: 0, strict: 0, once: 0 };
const slowSignals: AbortSignal[] = [];
let tracedCtx: TaskHandlerContext | undefined;

beforeAll(async () => {
  redis = createRedis(REDIS_URL, { name: 'tasks-queue-test' });
  client = new TaskClient({ connection: redis, prefix, logger: quietLogger(), registry });
  worker = new TaskWorker({
    connection: REDIS_URL,
    prefix,
    queues: ['q-flaky', 'q-declined', 'q-strict', 'q-once', 'q-quick', 'q-slow', 'q-liar', 'q-traced'],
    concurrency: 20,
    logger: capturingLogger,
    registry,
  });
  worker
    .handle(flaky, (input, ctx) => {
      calls.flaky += 1;
      if (ctx.attempt < 3) throw new Error(`provider down (attempt ${ctx.attempt})`);
      return { n: input.n, attempt: ctx.attempt };
    })
    .handle(declined, () => {
      calls.declined += 1;
      throw new PermanentError('card declined', 'payments.declined');
    })
    .handle(strict, () => {
      calls.strict += 1;
      return {};
    })
    .handle(once, async () => {
      calls.once += 1;
      await new Promise((resolve) => setImmediate(resolve));
      return { run: calls.once };
    })
    .handle(quick, (input) => ({ doubled: input.n * 2 }))
    .handle(slow, async (_input, ctx) => {
      slowSignals.push(ctx.signal);
      // The first attempt ignores its signal and would never finish; the timeout must still end it.
      if (ctx.attempt === 1) await new Promise(() => {});
      return { attempt: ctx.attempt };
    })
    .handle(liar, () => ({ ok: false }) as unknown as { ok: true })
    .handle(traced, (_input, ctx) => {
      tracedCtx = ctx;
      ctx.logger.info('handling traced task');
      const context = currentContext();
      return { correlationId: context!.correlationId, causationId: context?.causationId, userId: context?.userId };
    });
  await worker.start();
});

afterAll(async () => {
  await worker?.close();
  await client?.close();
  await redis?.quit();
  await removePrefix(prefix);
});

describe('task queue', () => {
  it('when a handler fails twice, the task still completes on the third attempt', async () => {
    const ref = await client.enqueue(flaky, { n: 7 });
    await expect(ref.result({ timeoutMs: 10_000 })).resolves.toEqual({ n: 7, attempt: 3 });
    expect(calls.flaky).toBe(3);
    expect(ref.duplicate).toBe(false);
  });

  it('a PermanentError is not retried: dead letter after one attempt, result rejects with its code', async () => {
    const ref = await client.enqueue(declined, { n: 1 });
    const error = await ref.result({ timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect(error).toMatchObject({ code: 'payments.declined', message: 'card declined', attemptsMade: 1, task: 'test.declined' });
    expect(calls.declined).toBe(1);
    const letter = await client.deadLetters.get('q-declined', ref.id);
    expect(letter?.attempts).toEqual([expect.objectContaining({ attempt: 1, code: 'payments.declined', final: true })]);
  });

  it('a job whose input fails the schema (added with plain BullMQ) is dead-lettered without retry and never reaches the handler', async () => {
    const raw = new Queue<TaskJobData>('q-strict', { connection: redis, prefix });
    const data: TaskJobData = { input: { email: 'not-an-email' }, context: { correlationId: 'raw-1' } };
    const job = await raw.add(strict.name, data, { ...jobOptionsFor(strict) });
    await raw.close();
    const error = await client.ref(strict, job.id!).result({ timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'TaskFailedError', code: 'tasks.invalid_input', attemptsMade: 1 });
    expect(calls.strict).toBe(0);
    const letter = await client.deadLetters.get('q-strict', job.id!);
    expect(letter).toMatchObject({ task: 'test.strict', input: { email: 'not-an-email' }, context: { correlationId: 'raw-1' }, attemptsMade: 1 });
    expect(letter?.attempts).toHaveLength(1);
  });

  it('enqueue rejects invalid input with a ValidationError carrying the zod issues', async () => {
    const error = await client.enqueue(strict, { email: 'nope' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ code: 'validation_failed', details: [expect.objectContaining({ path: ['email'] })] });
  });

  it('20 concurrent enqueues with one idempotency key run the handler once and all resolve to its result', async () => {
    const refs = await Promise.all(Array.from({ length: 20 }, () => client.enqueue(once, { n: 1 }, { idempotencyKey: 'order-42' })));
    expect(new Set(refs.map((ref) => ref.id))).toEqual(new Set([derivedId(once.name, 'order-42')]));
    expect(refs.filter((ref) => !ref.duplicate)).toHaveLength(1);
    const results = await Promise.all(refs.map((ref) => ref.result({ timeoutMs: 10_000 })));
    expect(results).toEqual(Array.from({ length: 20 }, () => ({ run: 1 })));
    // Later, within the retention window: still the first job's result, still one run.
    const again = await client.enqueue(once, { n: 2 }, { idempotencyKey: 'order-42' });
    expect(again.duplicate).toBe(true);
    await expect(again.result()).resolves.toEqual({ run: 1 });
    expect(calls.once).toBe(1);
  });

  it('result() of a job that already completed resolves at once (from a fresh client with its own results connection)', async () => {
    const ref = await client.enqueue(quick, { n: 21 });
    await ref.result({ timeoutMs: 10_000 });
    const other = new TaskClient({ connection: REDIS_URL, resultsConnection: REDIS_URL, prefix, logger: quietLogger(), registry });
    try {
      await expect(other.ref(quick, ref.id).result({ timeoutMs: 1_000 })).resolves.toEqual({ doubled: 42 });
    } finally {
      await other.close();
    }
  });

  it('many result() waits on one queue each get their own job result', async () => {
    const refs = await Promise.all(Array.from({ length: 200 }, (_, n) => client.enqueue(quick, { n })));
    const results = await Promise.all(refs.map((ref) => ref.result({ timeoutMs: 10_000 })));
    expect(results).toEqual(Array.from({ length: 200 }, (_, n) => ({ doubled: n * 2 })));
  });

  it('enqueueMany adds a batch in one round trip and honours idempotency keys', async () => {
    const refs = await client.enqueueMany(quick, [{ input: { n: 1 } }, { input: { n: 2 }, options: { idempotencyKey: 'bulk-1' } }]);
    const again = await client.enqueueMany(quick, [{ input: { n: 3 }, options: { idempotencyKey: 'bulk-1' } }]);
    expect(refs.map((ref) => ref.duplicate)).toEqual([false, false]);
    expect(again[0]).toMatchObject({ id: refs[1]!.id, duplicate: true });
    await expect(Promise.all([...refs, ...again].map((ref) => ref.result({ timeoutMs: 10_000 })))).resolves.toEqual([
      { doubled: 2 },
      { doubled: 4 },
      { doubled: 4 },
    ]);
  });

  it('result() rejects with TaskTimeoutError when nobody runs the job in time', async () => {
    const ref = await client.enqueue(unworked, { n: 1 });
    const error = await ref.result({ timeoutMs: 100 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskTimeoutError);
    expect(error).toMatchObject({ code: 'tasks.timeout', timeoutMs: 100 });
  });

  it('closing the client rejects pending result() calls instead of leaving them hanging', async () => {
    const other = new TaskClient({ connection: REDIS_URL, prefix, logger: quietLogger(), registry });
    const ref = await other.enqueue(unworked, { n: 2 });
    const waiting = ref.result({ timeoutMs: 10_000 }).catch((e: unknown) => e);
    await other.close();
    expect(await waiting).toMatchObject({ code: 'tasks.client_closed' });
  });

  it('result() of an unknown job id rejects with tasks.not_found', async () => {
    await expect(client.ref(quick, 'no-such-job').result({ timeoutMs: 1_000 })).rejects.toMatchObject({ code: 'tasks.not_found' });
  });

  it('an attempt past timeoutMs is aborted through ctx.signal and retried, even if the handler ignores the signal', async () => {
    const ref = await client.enqueue(slow, { n: 1 });
    await expect(ref.result({ timeoutMs: 10_000 })).resolves.toEqual({ attempt: 2 });
    expect(slowSignals).toHaveLength(2);
    expect(slowSignals[0]!.aborted).toBe(true);
    expect(slowSignals[0]!.reason).toBeInstanceOf(TaskTimeoutError);
    expect(slowSignals[1]!.aborted).toBe(false);
    const { logs } = await client.queue('q-slow').getJobLogs(ref.id);
    expect(logs.map((line) => JSON.parse(line) as unknown)).toEqual([expect.objectContaining({ attempt: 1, code: 'tasks.timeout', final: false })]);
  });

  it('an output that fails its schema fails the attempt (retried, then dead letter)', async () => {
    const ref = await client.enqueue(liar, { n: 1 });
    await expect(ref.result({ timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'tasks.invalid_output', attemptsMade: 2 });
  });

  it('a job of a task with no handler on the worker fails permanently with a clear error', async () => {
    const ref = await client.enqueue(orphan, { n: 1 });
    const error = await ref.result({ timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'tasks.unknown_task', attemptsMade: 1 });
    expect((error as Error).message).toContain('No handler for task "test.orphan"');
  });

  it('the handler runs in the job context: correlation id and user id travel, causation id is the job id, log lines carry them', async () => {
    const ref = await runWithContext({ correlationId: 'req-123', userId: 'user-9' }, () => client.enqueue(traced, { n: 1 }));
    await expect(ref.result({ timeoutMs: 10_000 })).resolves.toEqual({ correlationId: 'req-123', causationId: ref.id, userId: 'user-9' });
    expect(tracedCtx).toMatchObject({ correlationId: 'req-123', userId: 'user-9', jobId: ref.id, attempt: 1 });
    const line = logLines.find((entry) => entry.msg === 'handling traced task');
    expect(line).toMatchObject({ correlationId: 'req-123', userId: 'user-9', task: 'test.traced', jobId: ref.id, attempt: 1 });
    // A context passed explicitly wins over the current one.
    const explicit = await client.enqueue(traced, { n: 2 }, { context: { correlationId: 'outbox-7' } });
    await expect(explicit.result({ timeoutMs: 10_000 })).resolves.toMatchObject({ correlationId: 'outbox-7' });
  });

  it('successful jobs log nothing at info level', async () => {
    const before = logLines.length;
    const ref = await client.enqueue(quick, { n: 5 });
    await ref.result({ timeoutMs: 10_000 });
    expect(logLines.slice(before).filter((entry) => entry.level !== 'debug')).toEqual([]);
  });

  it('exposes Prometheus metrics: attempts by outcome, durations and queue depth', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/civildiy_tasks_total\{task="test.flaky",queue="q-flaky",outcome="completed"\} 1/);
    expect(text).toMatch(/civildiy_tasks_total\{task="test.flaky",queue="q-flaky",outcome="retried"\} 2/);
    expect(text).toMatch(/civildiy_tasks_total\{task="test.declined",queue="q-declined",outcome="failed"\} 1/);
    expect(text).toMatch(/civildiy_tasks_total\{task="test.liar",queue="q-liar",outcome="dead_lettered"\} 1/);
    expect(text).toMatch(/civildiy_task_duration_seconds_count\{task="test.quick",queue="q-quick",outcome="completed"\} \d+/);
    expect(text).toMatch(/civildiy_task_queue_depth\{queue="q-declined",state="failed"\} 1/);
    expect(text).toMatch(/civildiy_task_queue_depth\{queue="q-nobody",state="waiting"\} [1-9]/);
    // A second worker or client on the same registry reuses the metrics instead of throwing.
    expect(() => new TaskWorker({ connection: REDIS_URL, prefix, queues: ['q-x'], registry })).not.toThrow();
    expect(taskMetrics(registry)).toBe(taskMetrics(registry));
  });

  it('a deferred enqueue does not run before its delay', async () => {
    const started = Date.now();
    const ref = await client.enqueue(quick, { n: 4 }, { delayMs: 200 });
    await expect(ref.result({ timeoutMs: 10_000 })).resolves.toEqual({ doubled: 8 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });
});
