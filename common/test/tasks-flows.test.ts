import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runWithContext } from '../src/context/index.ts';
import { PermanentError } from '../src/errors/index.ts';
import { Registry } from 'prom-client';
import { TaskClient, TaskFailedError, TaskWorker, chain, defineTask, schedule, unschedule } from '../src/tasks/index.ts';
import { REDIS_URL, countdown, quietLogger, removePrefix, uniquePrefix } from './fixtures/tasks-support.ts';

const prefix = uniquePrefix('flows');
const registry = new Registry();

const Trail = z.object({ value: z.number(), trail: z.array(z.string()) });
const fetchStep = defineTask({ name: 'test.fetch', queue: 'q-steps', input: z.object({ start: z.number() }), output: Trail });
const addStep = defineTask({ name: 'test.add', queue: 'q-steps', input: Trail, output: Trail });
const finishStep = defineTask({ name: 'test.finish', queue: 'q-final', input: Trail, output: z.object({ total: z.number(), trail: z.array(z.string()), correlationId: z.string() }) });
const refuseStep = defineTask({ name: 'test.refuse', queue: 'q-steps', input: Trail, output: Trail });
const mismatch = defineTask({ name: 'test.mismatch', queue: 'q-final', input: z.object({ other: z.string() }), output: z.object({}) });
const tick = defineTask({ name: 'test.tick', queue: 'q-ticks', input: z.object({ label: z.string() }), output: z.object({ label: z.string() }) });

const order: string[] = [];
const ticks: { label: string; correlationId: string; jobId: string }[] = [];
let onTick: (() => void) | undefined;
let client: TaskClient;
let worker: TaskWorker;

beforeAll(async () => {
  client = new TaskClient({ connection: REDIS_URL, prefix, logger: quietLogger(), registry });
  worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: ['q-steps', 'q-final', 'q-ticks'], concurrency: 5, logger: quietLogger(), registry });
  worker
    .handle(fetchStep, (input) => {
      order.push('fetch');
      return { value: input.start, trail: ['fetch'] };
    })
    .handle(addStep, (input) => {
      order.push('add');
      return { value: input.value + 10, trail: [...input.trail, 'add'] };
    })
    .handle(finishStep, (input, ctx) => {
      order.push('finish');
      return { total: input.value * 2, trail: [...input.trail, 'finish'], correlationId: ctx.correlationId };
    })
    .handle(refuseStep, () => {
      order.push('refuse');
      throw new PermanentError('no way', 'test.refused');
    })
    .handle(mismatch, () => ({}))
    .handle(tick, (input, ctx) => {
      ticks.push({ label: input.label, correlationId: ctx.correlationId, jobId: ctx.jobId });
      onTick?.();
      return { label: input.label };
    });
  await worker.start();
});

afterAll(async () => {
  await worker?.close();
  await client?.close();
  await removePrefix(prefix);
});

describe('chains', () => {
  it('runs three steps in order, threading each output into the next input', async () => {
    order.length = 0;
    const ref = await runWithContext({ correlationId: 'chain-1' }, () =>
      chain(client, [{ task: fetchStep, input: { start: 1 } }, { task: addStep }, { task: finishStep }]),
    );
    expect(ref.task).toBe('test.finish');
    const result = await ref.result({ timeoutMs: 10_000 });
    expect(result).toEqual({ total: 22, trail: ['fetch', 'add', 'finish'], correlationId: 'chain-1' });
    expect(order).toEqual(['fetch', 'add', 'finish']);
  });

  it('when a middle step fails for good, the chain stops and the last step reference rejects', async () => {
    order.length = 0;
    const ref = await chain(client, [{ task: fetchStep, input: { start: 1 } }, { task: refuseStep }, { task: finishStep }]);
    const error = await ref.result({ timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    // The reference is to the last step, the error is the failing step's.
    expect(error).toMatchObject({ task: 'test.finish', code: 'test.refused', message: 'no way' });
    expect(order).toEqual(['fetch', 'refuse']);
  });

  it("a previous output that does not fit the next step's input schema is a permanent failure", async () => {
    const ref = await chain(client, [{ task: fetchStep, input: { start: 1 } }, { task: mismatch }]);
    await expect(ref.result({ timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'tasks.invalid_input', attemptsMade: 1 });
  });

  it('validates the first input before adding anything', async () => {
    await expect(chain(client, [{ task: fetchStep, input: { start: 'one' as unknown as number } }, { task: addStep }])).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });
});

describe('schedules', () => {
  it('an interval schedule fires repeatedly until unscheduled', async () => {
    const fired = countdown(2);
    onTick = fired.hit;
    await schedule(client, tick, { id: 'tick-every-200ms', everyMs: 200, input: { label: 'heartbeat' } });
    await fired.done;
    onTick = undefined;
    expect(await unschedule(client, tick, 'tick-every-200ms')).toBe(true);
    expect(ticks.slice(0, 2).map((entry) => entry.label)).toEqual(['heartbeat', 'heartbeat']);
    // Each run is its own job, and (outside any request) its own correlation id.
    expect(ticks[0]!.jobId).not.toBe(ticks[1]!.jobId);
    expect(ticks[0]!.correlationId).toBe(ticks[0]!.jobId);
    expect(await client.queue('q-ticks').getJobSchedulersCount()).toBe(0);
    expect(await unschedule(client, tick, 'tick-every-200ms')).toBe(false);
  });

  it('rejects a schedule with both or neither of cron and everyMs, and an invalid input', async () => {
    await expect(schedule(client, tick, { id: 'bad', input: { label: 'x' } })).rejects.toBeInstanceOf(TypeError);
    await expect(schedule(client, tick, { id: 'bad', cron: '* * * * *', everyMs: 5, input: { label: 'x' } })).rejects.toBeInstanceOf(TypeError);
    await expect(schedule(client, tick, { id: 'bad', everyMs: 1000, input: { label: 1 as unknown as string } })).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });

  it('a cron schedule is registered with its pattern', async () => {
    await schedule(client, tick, { id: 'nightly', cron: '0 3 * * *', tz: 'UTC', input: { label: 'nightly' } });
    const [scheduler] = await client.queue('q-ticks').getJobSchedulers();
    expect(scheduler).toMatchObject({ key: 'nightly', pattern: '0 3 * * *' });
    expect(await unschedule(client, tick, 'nightly')).toBe(true);
  });
});
