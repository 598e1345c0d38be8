import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { histogramQuantile, MetricWindow } from '../src/metric-window.ts';
import { parseMetrics, parseSampleLine } from '../src/metrics-scrape.ts';

describe('reading /metrics', () => {
  it('keeps every series of a labelled histogram apart, with its buckets, sum and count', async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ service: 'worker' });
    const histogram = new Histogram({ name: 'civildiy_task_duration_seconds', help: 'x', labelNames: ['task', 'queue', 'outcome'], buckets: [0.1, 1], registers: [registry] });
    histogram.observe({ task: 'orders.process', queue: 'orders', outcome: 'completed' }, 0.05);
    histogram.observe({ task: 'search.embed', queue: 'embeddings', outcome: 'retried' }, 5);
    new Counter({ name: 'unwatched_total', help: 'x', registers: [registry] }).inc();

    const samples = parseMetrics(await registry.metrics());
    const of = (task: string) => samples.filter((sample) => sample.labels.task === task).map(({ name, labels, value }) => [name, labels.le ?? '', value]);
    expect(of('orders.process')).toEqual([
      ['civildiy_task_duration_seconds_bucket', '0.1', 1],
      ['civildiy_task_duration_seconds_bucket', '1', 1],
      ['civildiy_task_duration_seconds_bucket', '+Inf', 1],
      ['civildiy_task_duration_seconds_sum', '', 0.05],
      ['civildiy_task_duration_seconds_count', '', 1],
    ]);
    expect(of('search.embed').at(-1)).toEqual(['civildiy_task_duration_seconds_count', '', 1]);
    expect(samples.some((sample) => sample.name.startsWith('unwatched'))).toBe(false);
  });

  it('reads escaped label values, timestamps and special values, and refuses what is not a sample', () => {
    expect(parseSampleLine('m{a="x\\"y\\\\z\\n",b="ü, }"} 1.5e3 1700000000000')).toEqual({ name: 'm', labels: { a: 'x"y\\z\n', b: 'ü, }' }, value: 1500 });
    expect(parseSampleLine('m +Inf')).toEqual({ name: 'm', labels: {}, value: Infinity });
    expect(parseSampleLine('m{} NaN')?.value).toBeNaN();
    expect(parseSampleLine('m{a="unterminated} 1')).toBeUndefined();
    expect(parseSampleLine('m{a=1} 1')).toBeUndefined();
    expect(parseSampleLine('m abc')).toBeUndefined();
  });
});

describe('the metric window', () => {
  const scrape = async (registry: Registry) => parseMetrics(await registry.metrics());

  it('gives a per-minute rate over the window, counting from zero again after a process restart', async () => {
    const registry = new Registry();
    const start = new Gauge({ name: 'process_start_time_seconds', help: 'x', registers: [registry] });
    const tasks = new Counter({ name: 'civildiy_tasks_total', help: 'x', labelNames: ['queue', 'outcome'], registers: [registry] });
    const window = new MetricWindow({ spacingMs: 1_000 });
    const t0 = 1_000_000;
    start.set(100);
    tasks.inc({ queue: 'orders', outcome: 'completed' }, 50);
    window.record('worker', await scrape(registry), t0);
    const query = { name: 'civildiy_tasks_total', labels: { queue: 'orders', outcome: 'completed' } };
    expect(window.perMinute(query, 60_000, t0)).toBeNull();

    tasks.inc({ queue: 'orders', outcome: 'completed' }, 10);
    window.record('worker', await scrape(registry), t0 + 30_000);
    expect(window.perMinute(query, 60_000, t0 + 30_000)).toBe(20);

    // The process restarted: its counter starts again (at 4 now), which all counts as new.
    tasks.reset();
    start.set(200);
    tasks.inc({ queue: 'orders', outcome: 'completed' }, 4);
    window.record('worker', await scrape(registry), t0 + 60_000);
    expect(window.perMinute(query, 30_000, t0 + 60_000)).toBe(8);
    expect(window.perMinute({ ...query, labels: { queue: 'orders', outcome: ['failed', 'retried'] } }, 30_000, t0 + 60_000)).toBe(0);
  });

  it("leaves out gauges of an instance that stopped answering, and forgets it after the window", async () => {
    const registry = new Registry();
    new Gauge({ name: 'search_index_failed_rows', help: 'x', registers: [registry] }).set(3);
    const window = new MetricWindow({ staleMs: 10_000, keepMs: 60_000 });
    window.record('search-service', await scrape(registry), 0);
    expect(window.latest({ name: 'search_index_failed_rows' }, 5_000).map((sample) => sample.value)).toEqual([3]);
    expect(window.latest({ name: 'search_index_failed_rows' }, 20_000)).toEqual([]);
  });

  it('computes quantiles as Prometheus does', () => {
    const buckets = new Map([
      ['0.1', 50],
      ['1', 90],
      ['+Inf', 100],
    ]);
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.1);
    expect(histogramQuantile(0.7, buckets)).toBeCloseTo(0.55);
    // In the +Inf bucket: the highest finite bound.
    expect(histogramQuantile(0.99, buckets)).toBe(1);
    expect(histogramQuantile(0.5, new Map([['+Inf', 0]]))).toBeNull();
  });
});
