import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, derivedId, newId } from '@civildiy/common';
import { embedBatch, processOrder, type OrderPayload } from '@civildiy/common/contracts';
import { TaskClient } from '@civildiy/common/tasks';
import { freePort, startServiceProcess, type ServiceProcess, providerCall, startMockProviders, type MockProviders, repositoryRoot as root, REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';

const logger = createLogger({ service: 'worker', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const prefix = uniquePrefix('worker-process');

let providers: MockProviders;
let client: TaskClient;
const started: ServiceProcess[] = [];

beforeAll(async () => {
  providers = await startMockProviders();
  client = new TaskClient({ connection: REDIS_URL, prefix, logger });
});

afterEach(async () => {
  await providerCall(`${providers.paymentsUrl}/_admin/faults`, { method: 'PUT', body: {} });
});

afterAll(async () => {
  await Promise.all(started.map((service) => service.stop('SIGKILL')));
  await client?.close();
  await providers?.stop();
  await removeRedisPrefix(prefix);
});

/** Starts `worker/src/main.ts` as its own process on a free port and waits until it is ready. */
async function startWorker(env: Record<string, string> = {}): Promise<{ service: ServiceProcess; url: string }> {
  const port = await freePort();
  const service = await startServiceProcess({
    root,
    workspace: 'worker',
    env: {
      WORKER_PORT: String(port),
      REDIS_KEY_PREFIX: prefix,
      PAYMENTS_URL: providers.paymentsUrl,
      EMBEDDINGS_URL: providers.embeddingsUrl,
      SHUTDOWN_TIMEOUT_MS: '10000',
      ...env,
    },
    readyUrl: `http://127.0.0.1:${port}/health/ready`,
  });
  started.push(service);
  return { service, url: `http://127.0.0.1:${port}` };
}

function order(): OrderPayload {
  return { orderId: newId(), customerId: newId(), currency: 'EUR', lines: [{ sku: 'KIT-LAMP-01', name: 'Lamp kit', quantity: 1, unitPriceCents: 3950 }] };
}

/** The lines of a structured (JSON) log output. */
function logLines(output: string): { msg?: string; level?: number }[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg?: string; level?: number });
}

describe('the worker process', () => {
  it('is ready, runs orders.process, counts it in /metrics and exits 0 on SIGTERM', async () => {
    const { service, url } = await startWorker();
    const ready = await fetch(`${url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { redis: { status: 'up' } } });
    expect((await fetch(`${url}/health/live`)).status).toBe(200);

    const payload = order();
    const outcome = await (await client.enqueue(processOrder, payload, { idempotencyKey: payload.orderId })).result({ timeoutMs: 20_000 });
    expect(outcome).toMatchObject({ orderId: payload.orderId, status: 'confirmed', totalCents: 3950 });

    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toMatch(/^civildiy_tasks_total\{[^}]*task="orders\.process"[^}]*outcome="completed"[^}]*\} 1$/m);
    expect(text).toContain('civildiy_task_duration_seconds_bucket');

    const exit = await service.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    const lines = logLines(service.output());
    expect(lines.some((line) => line.msg === 'stopped')).toBe(true);
  });

  it('consumes the embeddings queue by default: runs search.embed with the configured model and dimensions', async () => {
    const { service } = await startWorker({ EMBEDDINGS_DIMENSIONS: '64' });
    const texts = [
      { id: 'row-1', text: 'Build a cedar raised garden bed' },
      { id: 'row-2', text: 'Wiring a ceiling lamp' },
    ];
    const batchId = derivedId('worker-process-batch', newId());
    const output = await (await client.enqueue(embedBatch, { batchId, texts }, { idempotencyKey: batchId })).result({ timeoutMs: 20_000 });
    expect(output).toMatchObject({ batchId, model: 'civildiy-hash-embed-1', dimensions: 64 });
    expect(output.vectors.map((vector) => [vector.id, vector.embedding.length])).toEqual([
      ['row-1', 64],
      ['row-2', 64],
    ]);
    expect(await service.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('refuses to start with a queue it has no handler for, naming WORKER_QUEUES', async () => {
    const service = await startServiceProcess({
      root,
      workspace: 'worker',
      env: { WORKER_PORT: String(await freePort()), REDIS_KEY_PREFIX: prefix, WORKER_QUEUES: 'orders,notifications' },
    });
    started.push(service);
    const exit = await service.exited;
    expect(exit.code).not.toBe(0);
    expect(service.output()).toContain('WORKER_QUEUES');
  });

  it('on SIGTERM finishes the order it is running before it exits 0', async () => {
    const { service } = await startWorker();
    await providerCall(`${providers.paymentsUrl}/_admin/faults`, { method: 'PUT', body: { latencyMs: 1_500 } });
    const before = (await providerCall<{ callsReceived: number }>(`${providers.paymentsUrl}/_admin/stats`)).callsReceived;
    const payload = order();
    const ref = await client.enqueue(processOrder, payload, { idempotencyKey: payload.orderId });
    // The worker is inside the (slow) payment call when it is told to stop.
    await expect
      .poll(async () => (await providerCall<{ callsReceived: number }>(`${providers.paymentsUrl}/_admin/stats`)).callsReceived, { timeout: 15_000, interval: 50 })
      .toBeGreaterThan(before);
    const exit = service.stop('SIGTERM');

    const outcome = await ref.result({ timeoutMs: 15_000 });
    expect(outcome).toMatchObject({ orderId: payload.orderId, status: 'confirmed' });
    expect(await exit).toEqual({ code: 0, signal: null });
    const job = await client.queue(processOrder.queue).getJob(ref.id);
    expect(job?.attemptsMade).toBe(1);
  });
});
