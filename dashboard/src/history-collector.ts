import type { HistoryPoint, SeriesName } from './contract.ts';
import type { HistoryStore } from './history-store.ts';
import type { MetricWindow, SampleQuery } from './metric-window.ts';

/** Per-minute series are the increase over the last minute; latencies are of the last minute's events. */
const MINUTE_MS = 60_000;
/** Provider call outcomes that are not failures (the provider answered, or the caller gave up). */
const ANSWERED = ['succeeded', 'declined', 'delivered', 'embedded', 'cancelled'];
/** `civildiy_provider_circuit_state` values of an open circuit (cockatiel: 1 open, 3 isolated). */
const OPEN_STATES = new Set([1, 3]);

/**
 * Computes one point of every chart series from the services' scraped metrics (the metric window)
 * and appends it to the history in Redis:
 * - `orders.*`: `civildiy_orders_total{event}` of order-service, per minute;
 * - `feed.latency.*`: `feed_event_latency_seconds` of feed-service (event `occurredAt` → applied), in ms;
 * - `search.*`: `search_index_{pending,claimed,failed}_rows` of search-service (backlog = pending + claimed);
 * - `providers.*`: `civildiy_provider_calls_total` per minute (failures: every outcome but an answer)
 *   and the circuits open now (`civildiy_provider_circuit_state`) in every process calling a provider;
 * - `gateway.*`: `civildiy_gateway_requests_total{status}` 4xx and 5xx per minute (its operations port).
 */
export class HistoryCollector {
  constructor(
    private readonly metrics: MetricWindow,
    private readonly store: HistoryStore,
  ) {}

  /** The point of the time slot holding `now` (not stored). */
  point(now = Date.now()): HistoryPoint {
    const step = this.store.stepSeconds;
    return { time: Math.floor(now / 1000 / step) * step, values: this.values(now) };
  }

  /** Computes the point of `now`'s slot and stores it (unless another dashboard did); resolves with it. */
  async collect(now = Date.now()): Promise<HistoryPoint> {
    const point = this.point(now);
    await this.store.append(point);
    return point;
  }

  private values(now: number): Record<SeriesName, number | null> {
    const perMinute = (query: SampleQuery) => round(this.metrics.perMinute(query, MINUTE_MS, now));
    const latencyMs = (q: number) => {
      const seconds = this.metrics.quantile({ name: 'feed_event_latency_seconds' }, q, MINUTE_MS, now);
      return seconds === null ? null : round(seconds * 1000);
    };
    const gauge = (...names: string[]) => {
      const samples = names.flatMap((name) => this.metrics.latest({ name }, now));
      return samples.length === 0 ? null : samples.reduce((sum, sample) => sum + sample.value, 0);
    };
    const circuits = this.metrics.latest({ name: 'civildiy_provider_circuit_state' }, now);
    return {
      'orders.placed': perMinute({ name: 'civildiy_orders_total', labels: { event: 'placed' } }),
      'orders.confirmed': perMinute({ name: 'civildiy_orders_total', labels: { event: 'confirmed' } }),
      'orders.rejected': perMinute({ name: 'civildiy_orders_total', labels: { event: 'rejected' } }),
      'feed.latency.p50': latencyMs(0.5),
      'feed.latency.p99': latencyMs(0.99),
      'search.backlog': gauge('search_index_pending_rows', 'search_index_claimed_rows'),
      'search.failed': gauge('search_index_failed_rows'),
      'providers.calls': perMinute({ name: 'civildiy_provider_calls_total' }),
      'providers.failures': perMinute({ name: 'civildiy_provider_calls_total', labels: { outcome: new RegExp(`^(?!(${ANSWERED.join('|')})$)`) } }),
      'providers.open_circuits': circuits.length === 0 ? null : circuits.filter((sample) => OPEN_STATES.has(sample.value)).length,
      'gateway.4xx': perMinute({ name: 'civildiy_gateway_requests_total', labels: { status: /^4\d\d$/ } }),
      'gateway.5xx': perMinute({ name: 'civildiy_gateway_requests_total', labels: { status: /^5\d\d$/ } }),
    };
  }
}

function round(value: number | null): number | null {
  return value === null ? null : Math.round(value * 100) / 100;
}
