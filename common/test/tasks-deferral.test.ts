import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ProviderHttp } from '../src/providers/provider-http.ts';
import { ProviderUnavailableError } from '../src/providers/index.ts';
import { createRedis, type Redis } from '../src/redis/index.ts';
import { TaskClient, TaskWorker, defineTask, deferralOf } from '../src/tasks/index.ts';
import { REDIS_URL, quietLogger, removePrefix, uniquePrefix } from './fixtures/tasks-support.ts';

const prefix = uniquePrefix('deferral');
const registry = new Registry();

const Input = z.object({ n: z.number().int() });
const Output = z.object({ attempt: z.number(), runs: z.number() });
/** One attempt only: any counted failure makes it a dead letter at once. */
const singleShot = defineTask({ name: 'test.single-shot', queue: 'q-defer', input: Input, output: Output, retry: { attempts: 1, backoff: { delayMs: 10 } } });

let redis: Redis;
let client: TaskClient;
let worker: TaskWorker;
const runs = new Map<number, number>();

beforeAll(async () => {
  redis = createRedis(REDIS_URL, { name: 'tasks-deferral-test' });
  client = new TaskClient({ connection: redis, prefix, logger: quietLogger(), registry });
  worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: ['q-defer'], concurrency: 4, logger: quietLogger(), registry });
  worker.handle(singleShot, (input, ctx) => {
    const run = (runs.get(input.n) ?? 0) + 1;
    runs.set(input.n, run);
    // The first two runs meet an open circuit: refused without calling the provider.
    if (run <= 2) throw new ProviderUnavailableError('embeddings', 'circuit open', 'provider.circuit_open', { deferMs: 150 });
    return { attempt: ctx.attempt, runs: run };
  });
  await worker.start();
});

afterAll(async () => {
  await worker?.close();
  await client?.close();
  redis?.disconnect();
  await removePrefix(prefix);
});

describe('deferred jobs (an open circuit)', () => {
  it('runs a job again after the delay without using up an attempt, so a single-attempt task still completes', async () => {
    const started = Date.now();
    const ref = await client.enqueue(singleShot, { n: 1 });
    await expect(ref.result({ timeoutMs: 10_000 })).resolves.toEqual({ attempt: 1, runs: 3 });
    // Two deferrals of 150 ms each: it waited instead of spinning.
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect((await client.deadLetters.list('q-defer')).total).toBe(0);
    const metrics = await registry.getSingleMetricAsString('civildiy_tasks_total');
    expect(metrics).toMatch(/task="test.single-shot",queue="q-defer",outcome="deferred"[^\n]*} 2/);
    expect(metrics).toMatch(/task="test.single-shot",queue="q-defer",outcome="completed"[^\n]*} 1/);
  });

  it('reads the delay only from a positive, finite deferMs', () => {
    expect(deferralOf(new ProviderUnavailableError('x', 'open', 'provider.circuit_open', { deferMs: 2_000 }))).toBe(2_000);
    expect(deferralOf(new ProviderUnavailableError('x', 'down'))).toBeUndefined();
    expect(deferralOf(Object.assign(new Error('odd'), { deferMs: -5 }))).toBeUndefined();
    expect(deferralOf(Object.assign(new Error('odd'), { deferMs: Number.POSITIVE_INFINITY }))).toBeUndefined();
    expect(deferralOf('not an error')).toBeUndefined();
  });

  it('an open circuit refuses calls with a deferral until it lets a trial call through', async () => {
    const http = new ProviderHttp('nowhere', { baseUrl: 'http://127.0.0.1:1', timeoutMs: 500, breaker: { consecutiveFailures: 1, halfOpenAfterMs: 5_000 } });
    // The failing call opens the circuit; it reached (tried to reach) the provider, so no deferral.
    const first = await http.post('/x', {}).catch((error: unknown) => error);
    expect(first).toBeInstanceOf(ProviderUnavailableError);
    expect(deferralOf(first)).toBeUndefined();
    const refused = await http.post('/x', {}).catch((error: unknown) => error);
    expect((refused as ProviderUnavailableError).code).toBe('provider.circuit_open');
    const deferMs = deferralOf(refused)!;
    expect(deferMs).toBeGreaterThan(4_000);
    expect(deferMs).toBeLessThanOrEqual(5_000);
  });
});
