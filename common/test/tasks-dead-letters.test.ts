import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TaskClient, TaskFailedError, TaskWorker, defineTask } from '../src/tasks/index.ts';
import { REDIS_URL, quietLogger, removePrefix, uniquePrefix } from './fixtures/tasks-support.ts';

const prefix = uniquePrefix('dead-letters');
const registry = new Registry();

/** Fails every attempt with a different message until `healed` is set. */
const fragile = defineTask({
  name: 'test.fragile',
  queue: 'q-fragile',
  input: z.object({ key: z.string() }),
  output: z.object({ key: z.string(), attempt: z.number() }),
  retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 5 } },
});

let healed = false;
let client: TaskClient;
let worker: TaskWorker;

beforeAll(async () => {
  client = new TaskClient({ connection: REDIS_URL, prefix, logger: quietLogger(), registry });
  worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: ['q-fragile'], concurrency: 10, logger: quietLogger(), registry });
  worker.handle(fragile, (input, ctx) => {
    if (!healed) throw Object.assign(new Error(`upstream 503 on attempt ${ctx.attempt}`), { code: 'upstream.unavailable' });
    return { key: input.key, attempt: ctx.attempt };
  });
  await worker.start();
});

afterAll(async () => {
  await worker?.close();
  await client?.close();
  await removePrefix(prefix);
});

/** Enqueues `keys` and waits until each has failed for good. */
async function deadLettered(keys: string[]): Promise<string[]> {
  const refs = await Promise.all(keys.map((key) => client.enqueue(fragile, { key }, { context: { correlationId: `corr-${key}` } })));
  const outcomes = await Promise.all(refs.map((ref) => ref.result({ timeoutMs: 10_000 }).catch((error: unknown) => error)));
  for (const outcome of outcomes) expect(outcome).toBeInstanceOf(TaskFailedError);
  return refs.map((ref) => ref.id);
}

describe('dead letters', () => {
  it('a job that runs out of attempts is listed and inspectable with every attempt error', async () => {
    const [id] = await deadLettered(['a']);
    const page = await client.deadLetters.list('q-fragile');
    expect(page.total).toBe(1);
    expect(page.items[0]).toMatchObject({ id, task: 'test.fragile', queue: 'q-fragile', input: { key: 'a' }, attemptsMade: 3 });

    const letter = await client.deadLetters.get('q-fragile', id!);
    expect(letter).toMatchObject({
      id,
      task: 'test.fragile',
      input: { key: 'a' },
      context: { correlationId: 'corr-a' },
      failedReason: 'upstream 503 on attempt 3',
      attemptsMade: 3,
    });
    expect(letter!.attempts.map(({ attempt, code, message, final }) => ({ attempt, code, message, final }))).toEqual([
      { attempt: 1, code: 'upstream.unavailable', message: 'upstream 503 on attempt 1', final: false },
      { attempt: 2, code: 'upstream.unavailable', message: 'upstream 503 on attempt 2', final: false },
      { attempt: 3, code: 'upstream.unavailable', message: 'upstream 503 on attempt 3', final: true },
    ]);
    expect(Date.parse(letter!.failedAt)).toBeGreaterThan(0);
    expect(await client.deadLetters.get('q-fragile', 'no-such-job')).toBeUndefined();
  });

  it('redrive runs a dead letter again with fresh attempts and its result reaches the waiters', async () => {
    const { items } = await client.deadLetters.list('q-fragile');
    const id = items[0]!.id;
    healed = true;
    try {
      expect(await client.deadLetters.redrive('q-fragile', id)).toBe(true);
      await expect(client.ref(fragile, id).result({ timeoutMs: 10_000 })).resolves.toEqual({ key: 'a', attempt: 1 });
    } finally {
      healed = false;
    }
    expect((await client.deadLetters.list('q-fragile')).total).toBe(0);
    expect(await client.deadLetters.redrive('q-fragile', id)).toBe(false);
  });

  it('redriveAll redrives every dead letter of the queue; pages list newest first', async () => {
    const ids = await deadLettered(['b', 'c', 'd']);
    const firstPage = await client.deadLetters.list('q-fragile', { offset: 0, limit: 2 });
    const secondPage = await client.deadLetters.list('q-fragile', { offset: 2, limit: 2 });
    expect(firstPage.total).toBe(3);
    expect(firstPage.items).toHaveLength(2);
    expect(secondPage.items).toHaveLength(1);
    expect(new Set([...firstPage.items, ...secondPage.items].map((item) => item.id))).toEqual(new Set(ids));

    healed = true;
    try {
      expect(await client.deadLetters.redriveAll('q-fragile')).toBe(3);
      const results = await Promise.all(ids.map((id) => client.ref(fragile, id).result({ timeoutMs: 10_000 })));
      expect(results.map((result) => result.key).sort()).toEqual(['b', 'c', 'd']);
    } finally {
      healed = false;
    }
    expect((await client.deadLetters.list('q-fragile')).total).toBe(0);
  });

  it('discard deletes a dead letter for good, and only a dead letter', async () => {
    const [id] = await deadLettered(['e']);
    expect(await client.deadLetters.discard('q-fragile', id!)).toBe(true);
    expect(await client.deadLetters.get('q-fragile', id!)).toBeUndefined();
    expect((await client.deadLetters.list('q-fragile')).total).toBe(0);
    expect(await client.deadLetters.discard('q-fragile', id!)).toBe(false);
  });

  it('counts redrives and discards in metrics', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/civildiy_task_dead_letters_total\{queue="q-fragile",action="redriven"\} 4/);
    expect(text).toMatch(/civildiy_task_dead_letters_total\{queue="q-fragile",action="discarded"\} 1/);
    expect(text).toMatch(/civildiy_tasks_total\{task="test.fragile",queue="q-fragile",outcome="dead_lettered"\} 5/);
  });
});
