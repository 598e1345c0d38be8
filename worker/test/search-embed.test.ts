import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, derivedId, newId } from '@civildiy/common';
import { embedBatch, type EmbedBatch } from '@civildiy/common/contracts';
import { EmbeddingsClient, type CircuitBreakerOptions } from '@civildiy/common/providers';
import { TaskClient, TaskFailedError, TaskWorker, jobOptionsFor, type AttemptRecord, type TaskJobData } from '@civildiy/common/tasks';
import { providerCall, startMockProviders, type MockProviders, REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { registerHandlers } from '../src/handlers.ts';

const logger = createLogger({ service: 'worker', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const MODEL = 'civildiy-hash-embed-1';
const DIMENSIONS = 256;

let providers: MockProviders;

beforeAll(async () => {
  providers = await startMockProviders();
});

afterEach(async () => {
  await setEmbeddingFaults({});
});

afterAll(async () => {
  await providers?.stop();
});

async function setEmbeddingFaults(faults: Record<string, number>): Promise<void> {
  await providerCall(`${providers.embeddingsUrl}/_admin/faults`, { method: 'PUT', body: faults });
}

async function embeddingCalls(): Promise<number> {
  return (await providerCall<{ callsReceived: number }>(`${providers.embeddingsUrl}/_admin/stats`)).callsReceived;
}

/** A batch as search-service sends it: buffer row ids and post texts. */
function batch(texts: string[]): EmbedBatch {
  const items = texts.map((text) => ({ id: newId(), text }));
  return { batchId: derivedId('test-batch', ...items.map((item) => item.id)), texts: items };
}

const DIY_TEXTS = [
  'Build a cedar raised garden bed. Cut the boards, screw the corners, line it and fill it with soil.',
  'Wiring a ceiling lamp: switch off the breaker, connect live, neutral and earth, then mount the canopy.',
  'Tiling a bathroom floor with porcelain tiles and a notched trowel.',
];

/** The running search.embed stack of one Redis prefix: a client, a worker and its embeddings client. */
interface Stack {
  client: TaskClient;
  worker: TaskWorker;
  embeddings: EmbeddingsClient;
  close(): Promise<void>;
}

async function startStack(name: string, options: { embeddingsUrl: string; breaker?: CircuitBreakerOptions }): Promise<Stack> {
  const prefix = uniquePrefix(name);
  const client = new TaskClient({ connection: REDIS_URL, prefix, logger });
  const worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: [embedBatch.queue], concurrency: 4, logger });
  const embeddings = new EmbeddingsClient({
    baseUrl: options.embeddingsUrl,
    model: MODEL,
    dimensions: DIMENSIONS,
    timeoutMs: 5_000,
    logger,
    ...(options.breaker ? { breaker: options.breaker } : {}),
  });
  registerHandlers(worker, { logger, embeddings });
  await worker.start();
  return {
    client,
    worker,
    embeddings,
    async close() {
      await worker.close();
      await client.close();
      await removeRedisPrefix(prefix);
    },
  };
}

/** The attempt errors the task runtime recorded in the job's log, oldest first. */
async function attemptLog(stack: Stack, jobId: string): Promise<Pick<AttemptRecord, 'attempt' | 'code' | 'final'>[]> {
  const { logs } = await stack.client.queue(embedBatch.queue).getJobLogs(jobId);
  return logs.map((line) => JSON.parse(line) as AttemptRecord).map(({ attempt, code, final }) => ({ attempt, code, final }));
}

describe('search.embed on a real worker against the real embeddings provider', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('worker-embed', { embeddingsUrl: providers.embeddingsUrl });
  });

  afterAll(async () => {
    await stack?.close();
  });

  it("embeds a batch in one provider call and returns one vector per text, in input order, each that text's vector", async () => {
    const input = batch(DIY_TEXTS);
    const before = await embeddingCalls();
    const ref = await stack.client.enqueue(embedBatch, input, { idempotencyKey: input.batchId });
    const output = await ref.result({ timeoutMs: 20_000 });

    expect(output).toMatchObject({ batchId: input.batchId, model: MODEL, dimensions: DIMENSIONS });
    expect(output.vectors.map((vector) => vector.id)).toEqual(input.texts.map((text) => text.id));
    expect(await embeddingCalls()).toBe(before + 1);
    // Each vector is the one the provider gives its text alone.
    for (const [i, text] of input.texts.entries()) {
      const alone = await stack.embeddings.embed([text.text]);
      expect(output.vectors[i]!.embedding).toEqual(alone.vectors[0]);
    }
    expect(await attemptLog(stack, ref.id)).toEqual([]);
  });

  it('when the provider fails twice, the batch is still embedded on attempt 3', async () => {
    const input = batch(DIY_TEXTS.slice(0, 2));
    await setEmbeddingFaults({ failNext: 2 });
    const ref = await stack.client.enqueue(embedBatch, input, { idempotencyKey: input.batchId });
    const output = await ref.result({ timeoutMs: 20_000 });

    expect(output.vectors.map((vector) => vector.id)).toEqual(input.texts.map((text) => text.id));
    expect((await stack.client.queue(embedBatch.queue).getJob(ref.id))?.attemptsMade).toBe(3);
    expect(await attemptLog(stack, ref.id)).toEqual([
      { attempt: 1, code: 'provider.unavailable', final: false },
      { attempt: 2, code: 'provider.unavailable', final: false },
    ]);
  });

  it('when the provider is down for good, the batch is a dead letter after its attempts, and a redrive embeds it once the provider is back', async () => {
    const input = batch(DIY_TEXTS);
    await setEmbeddingFaults({ failureRate: 1 });
    // The task's own backoff, with 3 attempts instead of 8 so the test ends in seconds.
    const data: TaskJobData = { input, context: { correlationId: `req-${newId()}` } };
    const job = await stack.client.queue(embedBatch.queue).add(embedBatch.name, data, { ...jobOptionsFor(embedBatch), attempts: 3 });
    const failure = await stack.client
      .ref(embedBatch, job.id!)
      .result({ timeoutMs: 20_000 })
      .catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(TaskFailedError);
    expect(failure).toMatchObject({ code: 'provider.unavailable', attemptsMade: 3 });
    const letter = await stack.client.deadLetters.get(embedBatch.queue, job.id!);
    expect(letter).toMatchObject({ task: 'search.embed', input, attemptsMade: 3 });
    expect(letter!.attempts.map(({ attempt, code, final }) => ({ attempt, code, final }))).toEqual([
      { attempt: 1, code: 'provider.unavailable', final: false },
      { attempt: 2, code: 'provider.unavailable', final: false },
      { attempt: 3, code: 'provider.unavailable', final: true },
    ]);

    await setEmbeddingFaults({});
    expect(await stack.client.deadLetters.redrive(embedBatch.queue, job.id!)).toBe(true);
    const output = await stack.client.ref(embedBatch, job.id!).result({ timeoutMs: 20_000 });
    expect(output.vectors.map((vector) => vector.id)).toEqual(input.texts.map((text) => text.id));
  });
});

describe('search.embed with a circuit breaker on the embeddings provider', () => {
  // Two consecutive failures open the circuit; a trial call is let through 2.5 s later. With the
  // task's backoff (1 s doubling, jitter 0.5), attempt 3 comes 1–2 s after the circuit opened and
  // meets it open; attempt 4 comes at least 3 s after, when the trial call is allowed.
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('worker-embed-breaker', { embeddingsUrl: providers.embeddingsUrl, breaker: { consecutiveFailures: 2, halfOpenAfterMs: 2_500 } });
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('while the circuit is open, the job waits without calling the provider or using attempts, and the batch is embedded once it recovers', async () => {
    const input = batch(DIY_TEXTS);
    await setEmbeddingFaults({ failNext: 2 });
    const before = await embeddingCalls();
    const ref = await stack.client.enqueue(embedBatch, input, { idempotencyKey: input.batchId });
    const output = await ref.result({ timeoutMs: 25_000 });

    expect(output.vectors).toHaveLength(3);
    // Two counted failures; the run that met the open circuit was deferred without using an attempt.
    expect(await attemptLog(stack, ref.id)).toEqual([
      { attempt: 1, code: 'provider.unavailable', final: false },
      { attempt: 2, code: 'provider.unavailable', final: false },
    ]);
    // Two failures and the successful trial call: the attempt that met the open circuit never reached it.
    expect(await embeddingCalls()).toBe(before + 3);
    expect(stack.embeddings.circuitState).toBe('closed');
  });
});

describe('search.embed against a provider answering another dimension', () => {
  let wrongSize: MockProviders;
  let stack: Stack;

  beforeAll(async () => {
    // A model server with a fixed size of 64 that ignores the requested 256 dimensions.
    wrongSize = await startMockProviders({ env: { MOCK_EMBEDDINGS_DIMENSIONS: '64', MOCK_EMBEDDINGS_FIXED_DIMENSIONS: 'true' } });
    stack = await startStack('worker-embed-dimension', { embeddingsUrl: wrongSize.embeddingsUrl });
  });

  afterAll(async () => {
    await stack?.close();
    await wrongSize?.stop();
  });

  it('dead-letters the batch at once with provider.dimension_mismatch, without retrying', async () => {
    const input = batch(DIY_TEXTS);
    const ref = await stack.client.enqueue(embedBatch, input, { idempotencyKey: input.batchId });
    const failure = await ref.result({ timeoutMs: 20_000 }).catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(TaskFailedError);
    expect(failure).toMatchObject({ code: 'provider.dimension_mismatch', attemptsMade: 1 });
    const letter = await stack.client.deadLetters.get(embedBatch.queue, ref.id);
    expect(letter).toMatchObject({ task: 'search.embed', input, attemptsMade: 1 });
    expect(letter!.attempts.map(({ attempt, code, final }) => ({ attempt, code, final }))).toEqual([{ attempt: 1, code: 'provider.dimension_mismatch', final: true }]);
    expect(letter!.attempts[0]!.message).toContain('64 dimensions, 256 expected');
  });
});
