import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { Registry } from 'prom-client';
import { TaskClient, TaskWorker, defineTask, schedule, unschedule } from '../src/tasks/index.ts';
import { REDIS_URL, countdown, quietLogger, removePrefix, uniquePrefix } from './fixtures/tasks-support.ts';

const prefix = uniquePrefix('cron');
const registry = new Registry();
const beat = defineTask({ name: 'test.cron-beat', queue: 'q-cron', input: z.object({ label: z.string() }), output: z.object({ at: z.number() }) });

const runs: { label: string; at: number }[] = [];
let onRun: (() => void) | undefined;
let client: TaskClient;
let worker: TaskWorker;

beforeAll(async () => {
  client = new TaskClient({ connection: REDIS_URL, prefix, logger: quietLogger(), registry });
  worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: ['q-cron'], logger: quietLogger(), registry });
  worker.handle(beat, (input) => {
    const at = Date.now();
    runs.push({ label: input.label, at });
    onRun?.();
    return { at };
  });
  await worker.start();
});

afterAll(async () => {
  await worker?.close();
  await client?.close();
  await removePrefix(prefix);
});

it('a cron schedule fires on its pattern (every second, with a seconds field) until unscheduled', async () => {
  const fired = countdown(2);
  onRun = fired.hit;
  await schedule(client, beat, { id: 'every-second', cron: '* * * * * *', input: { label: 'beat' } });
  await fired.done;
  onRun = undefined;
  expect(await unschedule(client, beat, 'every-second')).toBe(true);
  expect(runs.slice(0, 2).map((run) => run.label)).toEqual(['beat', 'beat']);
  // Cron runs land on whole seconds, so two runs are at least most of a second apart.
  expect(runs[1]!.at - runs[0]!.at).toBeGreaterThanOrEqual(500);
});
