import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client';
import type { EventBusAdmin, GroupInfo } from '@civildiy/common/events';
import type { ProjectionOutcome } from './feed-projection.ts';

/** Counts what the projection did with each event. */
export interface FeedMetrics {
  /** One event projected; with its `occurredAt`, an applied post event is timed from its publication. */
  record(eventType: string, outcome: ProjectionOutcome, occurredAt?: string): void;
}

/** Options of {@link feedMetrics}. */
export interface FeedMetricsOptions {
  /** Where the live consumer group's lag and pending events are read, at scrape time. */
  admin: Pick<EventBusAdmin, 'groups'>;
  /** The live consumer group. */
  group: string;
  /** The topics it consumes. */
  topics: readonly string[];
  /** The generation the API serves, read at scrape time. */
  generation: () => Promise<number>;
  /** Default: prom-client's global registry. */
  registry?: Registry;
}

const SCRAPE_TIMEOUT_MS = 1_000;

function existing<M>(registry: Registry, name: string): M | undefined {
  return registry.getSingleMetric(name) as M | undefined;
}

/** Resolves `undefined` instead of hanging a scrape while Redis does not answer. */
async function within<T>(promise: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise.catch(() => undefined), new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), SCRAPE_TIMEOUT_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The feed's metrics (a metric already in the registry is reused):
 * - `feed_projection_applied_total{event}`: events that changed the read model
 * - `feed_projection_ignored_total{event,reason}`: events that changed nothing (`duplicate`, `stale`, `deleted`)
 * - `feed_consumer_lag_events{topic}`: events not yet delivered to the live group (read at scrape time)
 * - `feed_consumer_pending_events{topic}`: events delivered to it and not yet acknowledged
 * - `feed_generation`: the read model generation served (it changes with each rebuild)
 * - `feed_event_latency_seconds{event}`: from a post event's `occurredAt` to its change in the read model (post → feed latency)
 */
export function feedMetrics(options: FeedMetricsOptions): FeedMetrics {
  const registry = options.registry ?? globalRegistry;
  const applied =
    existing<Counter<'event'>>(registry, 'feed_projection_applied_total') ??
    new Counter({ name: 'feed_projection_applied_total', help: 'Events that changed the feed read model', labelNames: ['event'], registers: [registry] });
  const ignored =
    existing<Counter<'event' | 'reason'>>(registry, 'feed_projection_ignored_total') ??
    new Counter({
      name: 'feed_projection_ignored_total',
      help: 'Events that changed nothing, by reason (duplicate, stale, deleted)',
      labelNames: ['event', 'reason'],
      registers: [registry],
    });

  const latency =
    existing<Histogram<'event'>>(registry, 'feed_event_latency_seconds') ??
    new Histogram({
      name: 'feed_event_latency_seconds',
      help: "From a post event's occurredAt to its change in the feed read model (post → feed latency)",
      labelNames: ['event'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });

  const groupStats = async (): Promise<Map<string, GroupInfo>> => {
    const stats = new Map<string, GroupInfo>();
    await Promise.all(
      options.topics.map(async (topic) => {
        const group = (await within(options.admin.groups(topic)))?.find((info) => info.name === options.group);
        if (group) stats.set(topic, group);
      }),
    );
    return stats;
  };
  if (!existing(registry, 'feed_consumer_lag_events')) {
    new Gauge({
      name: 'feed_consumer_lag_events',
      help: 'Events in the topic not yet delivered to the feed-service consumer group',
      labelNames: ['topic'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [topic, group] of await groupStats()) if (group.lag !== null) this.set({ topic }, group.lag);
      },
    });
  }
  if (!existing(registry, 'feed_consumer_pending_events')) {
    new Gauge({
      name: 'feed_consumer_pending_events',
      help: 'Events delivered to the feed-service consumer group and not yet acknowledged',
      labelNames: ['topic'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [topic, group] of await groupStats()) this.set({ topic }, group.pending);
      },
    });
  }
  if (!existing(registry, 'feed_generation')) {
    new Gauge({
      name: 'feed_generation',
      help: 'The feed read model generation the API serves (incremented by each rebuild)',
      registers: [registry],
      async collect() {
        const generation = await within(options.generation());
        if (generation !== undefined) this.set(generation);
      },
    });
  }

  return {
    record(event, outcome, occurredAt) {
      if (outcome !== 'applied') {
        ignored.inc({ event, reason: outcome });
        return;
      }
      applied.inc({ event });
      const occurred = occurredAt === undefined || !event.startsWith('post.') ? NaN : Date.parse(occurredAt);
      if (Number.isFinite(occurred)) latency.observe({ event }, Math.max(0, Date.now() - occurred) / 1000);
    },
  };
}
