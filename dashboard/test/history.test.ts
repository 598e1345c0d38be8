import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from '@civildiy/common/redis';
import { REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { SERIES } from '../src/contract.ts';
import { HistoryCollector } from '../src/history-collector.ts';
import { HistoryStore } from '../src/history-store.ts';
import { MetricWindow } from '../src/metric-window.ts';
import { parseMetrics } from '../src/metrics-scrape.ts';
import { startDashboard } from './dashboard-under-test.ts';

const STEP = 10;

/** What the services expose, in one registry: the metrics behind every chart. */
function serviceMetrics() {
  const registry = new Registry();
  const orders = new Counter({ name: 'civildiy_orders_total', help: 'orders', labelNames: ['event'], registers: [registry] });
  const latency = new Histogram({ name: 'feed_event_latency_seconds', help: 'latency', labelNames: ['event'], buckets: [0.01, 0.05, 0.1, 0.5, 1], registers: [registry] });
  const pending = new Gauge({ name: 'search_index_pending_rows', help: 'pending', registers: [registry] });
  const claimed = new Gauge({ name: 'search_index_claimed_rows', help: 'claimed', registers: [registry] });
  const failed = new Gauge({ name: 'search_index_failed_rows', help: 'failed', registers: [registry] });
  const calls = new Counter({ name: 'civildiy_provider_calls_total', help: 'calls', labelNames: ['provider', 'outcome'], registers: [registry] });
  const circuits = new Gauge({ name: 'civildiy_provider_circuit_state', help: 'circuits', labelNames: ['provider'], registers: [registry] });
  const requests = new Counter({ name: 'civildiy_gateway_requests_total', help: 'requests', labelNames: ['route', 'service', 'status'], registers: [registry] });
  const start = new Gauge({ name: 'process_start_time_seconds', help: 'start', registers: [registry] });
  start.set(1_700_000_000);
  return { registry, orders, latency, pending, claimed, failed, calls, circuits, requests };
}

let prefix: string;
let redis: Redis;

beforeEach(() => {
  prefix = uniquePrefix('dashboard-history');
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});

afterEach(async () => {
  await redis.quit();
  await removeRedisPrefix(prefix);
});

describe('the charts history', () => {
  it('turns the services metrics into one point per step: rates per minute, latency percentiles, gauges', async () => {
    const metrics = serviceMetrics();
    const window = new MetricWindow();
    const t0 = Date.UTC(2026, 0, 1, 12, 0, 0);
    window.record('all-in-one', parseMetrics(await metrics.registry.metrics()), t0);
    metrics.orders.inc({ event: 'placed' }, 6);
    metrics.orders.inc({ event: 'confirmed' }, 4);
    metrics.orders.inc({ event: 'rejected' }, 1);
    for (const seconds of [0.02, 0.03, 0.04, 0.8]) metrics.latency.observe({ event: 'post.created' }, seconds);
    metrics.pending.set(7);
    metrics.claimed.set(3);
    metrics.failed.set(2);
    metrics.calls.inc({ provider: 'payments', outcome: 'succeeded' }, 8);
    metrics.calls.inc({ provider: 'payments', outcome: 'server_error' }, 2);
    metrics.circuits.set({ provider: 'payments' }, 1);
    metrics.circuits.set({ provider: 'embeddings' }, 0);
    metrics.requests.inc({ route: '/orders', service: 'order-service', status: '201' }, 20);
    metrics.requests.inc({ route: '/orders', service: 'order-service', status: '404' }, 3);
    metrics.requests.inc({ route: '/orders', service: 'order-service', status: '503' }, 1);
    window.record('all-in-one', parseMetrics(await metrics.registry.metrics()), t0 + 30_000);

    const point = new HistoryCollector(window, new HistoryStore(redis, prefix, STEP)).point(t0 + 30_000);
    expect(point.time).toBe((t0 + 30_000) / 1000);
    // Over 30 s: per minute is twice the increase.
    expect(point.values).toMatchObject({
      'orders.placed': 12,
      'orders.confirmed': 8,
      'orders.rejected': 2,
      'search.backlog': 10,
      'search.failed': 2,
      'providers.calls': 20,
      'providers.failures': 4,
      'providers.open_circuits': 1,
      'gateway.4xx': 6,
      'gateway.5xx': 2,
    });
    expect(point.values['feed.latency.p50']).toBeGreaterThan(10);
    expect(point.values['feed.latency.p50']).toBeLessThanOrEqual(50);
    expect(point.values['feed.latency.p99']).toBeGreaterThan(500);
  });

  it('keeps its points in Redis: a restarted collector serves them, and a second dashboard does not write a slot twice', async () => {
    const now = Date.now();
    const slot = Math.floor(now / 1000 / STEP) * STEP;
    const point = (time: number, placed: number) => ({ time, values: { ...Object.fromEntries(SERIES.map((name) => [name, null])), 'orders.placed': placed } }) as never;
    const first = new HistoryStore(redis, prefix, STEP);
    expect(await first.append(point(slot - 2 * STEP, 3))).toBe(true);
    expect(await first.append(point(slot, 5))).toBe(true);
    // Another dashboard, the same slot: the first writer's point stays.
    expect(await new HistoryStore(redis, prefix, STEP).append(point(slot, 99))).toBe(false);

    // "Restarted": new objects on a new connection read what the old ones wrote.
    const connection = new Redis(REDIS_URL);
    const history = await new HistoryStore(connection, prefix, STEP).read(60, now).finally(() => connection.quit());
    expect(history.stepSeconds).toBe(STEP);
    expect(history.times).toEqual([slot - 2 * STEP, slot - STEP, slot]);
    expect(history.series['orders.placed']).toEqual([3, null, 5]);
    expect(history.series['gateway.5xx']).toEqual([null, null, null]);

    // And through the API of a dashboard started on those keys.
    const dashboard = await startDashboard({ prefix, stepSeconds: STEP });
    try {
      const { status, body } = await dashboard.call('GET', '/admin/history?minutes=60', { token: dashboard.operatorToken });
      expect(status).toBe(200);
      expect(body.series['orders.placed']).toEqual([3, null, 5]);
      const invalid = await dashboard.call('GET', '/admin/history?minutes=600', { token: dashboard.operatorToken });
      expect(invalid.status).toBe(400);
    } finally {
      await dashboard.close({ keepKeys: true });
    }
  });

  it('the points a dashboard collected are still served after it restarts', async () => {
    const before = await startDashboard({ prefix, stepSeconds: 1 });
    const points: number[] = [];
    const collected = new Promise<void>((resolve) => {
      before.monitor.subscribe((update) => {
        if (update.event !== 'point') return;
        points.push(update.data.time);
        if (points.length === 2) resolve();
      });
    });
    before.monitor.start();
    await collected;
    await before.close({ keepKeys: true });

    const after = await startDashboard({ prefix, stepSeconds: 1 });
    try {
      const { body } = await after.call('GET', '/admin/history?minutes=5', { token: after.operatorToken });
      expect(body.times).toEqual(expect.arrayContaining(points));
      // No service is watched here: no value, but the slot is there (a gap in the chart would mean the dashboard was down).
      expect(body.series['orders.placed'][body.times.indexOf(points[0])]).toBeNull();
    } finally {
      await after.close({ keepKeys: true });
    }
  });

  it('drops points older than an hour', async () => {
    const store = new HistoryStore(redis, prefix, STEP);
    const now = Date.now();
    const slot = Math.floor(now / 1000 / STEP) * STEP;
    const values = Object.fromEntries(SERIES.map((name) => [name, 1])) as never;
    await store.append({ time: slot - 2 * 3600, values });
    await store.append({ time: slot, values });
    const history = await store.read(60, now);
    expect(history.times).toEqual([slot]);
    expect(await redis.zcard(`${prefix}:dashboard:history:orders.placed`)).toBe(1);
    expect(await redis.zcard(`${prefix}:dashboard:history:times`)).toBe(1);
  });
});
