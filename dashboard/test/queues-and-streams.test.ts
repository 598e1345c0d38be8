import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { orderProcessed, processOrder, sendNotification } from '@civildiy/common/contracts';
import { RedisStreamsEventBus, type Subscription } from '@civildiy/common/events';
import { TaskWorker } from '@civildiy/common/tasks';
import { REDIS_URL, freePort, uniquePrefix } from '@civildiy/common/testing';
import type { Overview } from '../src/contract.ts';
import { logger, startDashboard, type DashboardUnderTest } from './dashboard-under-test.ts';

const WAIT = { timeout: 15_000, interval: 50 };
const GROUP = 'stats-consumer';

let dashboard: DashboardUnderTest;
let registry: Registry;
let worker: TaskWorker;
let bus: RedisStreamsEventBus;
let subscription: Subscription;
let server: Server;
let handled = 0;

/** The worker process's side, in this process: a task worker and a consumer whose metrics are served on `/metrics`. */
beforeAll(async () => {
  const prefix = uniquePrefix('dashboard-stats');
  registry = new Registry();
  worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: ['notifications'], logger, registry, name: 'stats-worker' });
  worker.handle(sendNotification, (input) => ({
    notificationId: input.notificationId,
    status: 'delivered' as const,
    providerMessageId: 'm-1',
    channel: 'email' as const,
    deliveredAt: new Date().toISOString(),
  }));
  await worker.start();
  bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, blockMs: 200, registry });
  subscription = bus.subscribe({ group: GROUP, events: [orderProcessed], handle: () => void handled++ });
  await subscription.ready;
  server = createServer((request, response) => {
    if (request.url === '/metrics') void registry.metrics().then((text) => response.writeHead(200).end(text));
    else response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok","checks":{}}');
  });
  const port = await freePort();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  dashboard = await startDashboard({
    prefix,
    services: [{ name: 'worker', portVariable: 'WORKER_PORT', ports: [port], role: 'task worker', docs: false }],
    urls: { worker: `http://127.0.0.1:${port}` },
  });
  // A first scrape before any work: the rates count from it.
  const scraped = new Promise<void>((resolve) => {
    const stop = dashboard.monitor.subscribe((update) => {
      if (update.event === 'overview' && update.data.services[0]?.live) {
        stop();
        resolve();
      }
    });
  });
  dashboard.monitor.start();
  await scraped;
});

afterAll(async () => {
  await subscription?.close();
  await bus?.close();
  await worker?.close();
  await dashboard?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

async function overview(): Promise<Overview> {
  return (await dashboard.call('GET', '/admin/overview', { token: dashboard.operatorToken })).body as Overview;
}

describe('task queues', () => {
  it('shows the counts, the workers connected, the completed rate and the run time percentiles of each task', async () => {
    const refs = await Promise.all(
      Array.from({ length: 5 }, () => dashboard.tasks.enqueue(sendNotification, { notificationId: newId(), userId: newId(), template: 'welcome', data: {} })),
    );
    await Promise.all(refs.map((ref) => ref.result({ timeoutMs: 10_000 })));
    await expect.poll(async () => (await overview()).queues.find((queue) => queue.queue === 'notifications')?.tasks[0]?.runs, WAIT).toBe(5);
    const queue = (await overview()).queues.find((candidate) => candidate.queue === 'notifications')!;
    expect(queue.counts).toMatchObject({ completed: 5, failed: 0, waiting: 0 });
    expect(queue.workers).toBeGreaterThanOrEqual(1);
    expect(queue.completedPerMinute).toBeGreaterThan(0);
    expect(queue.failedPerMinute).toBe(0);
    expect(queue.tasks).toEqual([{ task: 'notifications.send', runs: 5, p50Ms: expect.any(Number), p99Ms: expect.any(Number) }]);
    expect(queue.tasks[0]!.p50Ms!).toBeLessThanOrEqual(queue.tasks[0]!.p99Ms!);
  });

  it('shows how long the oldest job of a queue nobody consumes has waited', async () => {
    await dashboard.tasks.enqueue(processOrder, {
      orderId: newId(),
      customerId: newId(),
      currency: 'EUR',
      lines: [{ sku: 'KIT-SHELF-01', quantity: 1, name: 'Shelf', unitPriceCents: 1_000 }],
    });
    await expect.poll(async () => (await overview()).queues.find((queue) => queue.queue === 'orders')?.counts.waiting, WAIT).toBe(1);
    const orders = (await overview()).queues.find((queue) => queue.queue === 'orders')!;
    expect(orders.workers).toBe(0);
    expect(orders.oldestWaitingAgeSeconds).toEqual(expect.any(Number));
    expect(orders.oldestWaitingAgeSeconds!).toBeGreaterThanOrEqual(0);
    expect((await overview()).queues.find((queue) => queue.queue === 'notifications')!.oldestWaitingAgeSeconds).toBeNull();
  });

  it('lists every queue and topic of the contracts', async () => {
    const now = await overview();
    expect(now.queues.map((queue) => queue.queue)).toEqual(expect.arrayContaining(['orders', 'notifications', 'embeddings']));
    expect(now.streams.map((stream) => stream.topic)).toEqual(expect.arrayContaining(['orders-events', 'posts-events', 'users-events']));
  });
});

describe('event streams', () => {
  it('shows each consumer group with its consumers, lag, pending events and delivery rate', async () => {
    for (let i = 0; i < 3; i++) {
      await bus.publish(orderProcessed, { orderId: newId(), customerId: newId(), status: 'confirmed', totalCents: 100, currency: 'EUR', processedAt: new Date().toISOString() });
    }
    await expect.poll(() => handled, WAIT).toBe(3);
    const group = async () => (await overview()).streams.find((stream) => stream.topic === 'orders-events')?.groups.find((candidate) => candidate.group === GROUP);
    await expect.poll(async () => (await group())?.deliveredPerMinute ?? 0, WAIT).toBeGreaterThan(0);
    expect(await group()).toMatchObject({ consumers: 1, lag: 0, pending: 0 });
    const stream = (await overview()).streams.find((candidate) => candidate.topic === 'orders-events')!;
    expect(stream).toMatchObject({ transport: 'redis', deadLetters: 0 });
  });
});
