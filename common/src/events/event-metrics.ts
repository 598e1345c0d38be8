import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client';
import type { PartitionLag } from './event-bus.ts';

/** What a consumer did with one delivery (label `outcome` of `civildiy_events_consumed_total`). */
export type ConsumeOutcome = 'ok' | 'skipped' | 'retried' | 'dead_lettered';

/** What a {@link GroupStatsSource} reads. */
export interface GroupStats {
  /** Events the group has still to handle (`null` when unknown). */
  lag: number | null;
  /** Events delivered and not yet acknowledged. */
  pending: number;
  /** Per partition (Kafka). */
  partitions?: PartitionLag[];
}

/** A live consumer group whose lag and pending count are reported at scrape time. */
export interface GroupStatsSource {
  topic: string;
  group: string;
  /** Reads the group's current lag, pending count and, on Kafka, its lag per partition. */
  read(): Promise<GroupStats | undefined>;
}

/** The event bus metrics registered in one registry. */
export interface EventMetrics {
  published: Counter<'topic' | 'type'>;
  consumed: Counter<'topic' | 'type' | 'group' | 'outcome'>;
  handlerDuration: Histogram<'topic' | 'type' | 'group'>;
  /** Registers a group for the lag/pending gauges; returns the function that unregisters it. */
  track(source: GroupStatsSource): () => void;
}

const SCRAPE_TIMEOUT_MS = 1_000;

// Shared across copies of this module (one process may load `common` twice), keyed by registry.
const globalKey = '__civildiyEventGroupSources';
type SourcesByRegistry = WeakMap<Registry, Set<GroupStatsSource>>;
function sourcesOf(registry: Registry): Set<GroupStatsSource> {
  const holder = globalThis as typeof globalThis & { [globalKey]?: SourcesByRegistry };
  const byRegistry = (holder[globalKey] ??= new WeakMap());
  let sources = byRegistry.get(registry);
  if (!sources) byRegistry.set(registry, (sources = new Set()));
  return sources;
}

function existing<M>(registry: Registry, name: string): M | undefined {
  return registry.getSingleMetric(name) as M | undefined;
}

async function withTimeout<T>(promise: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), SCRAPE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The event bus metrics in `registry` (default: prom-client's global registry). A metric already
 * registered under the same name is reused, so several buses in one process share them.
 *
 * - `civildiy_events_published_total{topic,type}`
 * - `civildiy_events_consumed_total{topic,type,group,outcome}` (`ok|skipped|retried|dead_lettered`)
 * - `civildiy_event_handler_duration_seconds{topic,type,group}`
 * - `civildiy_event_consumer_lag{topic,group}`: events not yet delivered to the group (read at scrape time)
 * - `civildiy_event_consumer_pending{topic,group}`: events delivered and not yet acknowledged
 * - `civildiy_event_consumer_partition_lag{topic,group,partition}`: the same lag per partition (Kafka)
 */
export function eventMetrics(registry: Registry = globalRegistry): EventMetrics {
  const published =
    existing<Counter<'topic' | 'type'>>(registry, 'civildiy_events_published_total') ??
    new Counter({ name: 'civildiy_events_published_total', help: 'Events published, by topic and type', labelNames: ['topic', 'type'], registers: [registry] });
  const consumed =
    existing<Counter<'topic' | 'type' | 'group' | 'outcome'>>(registry, 'civildiy_events_consumed_total') ??
    new Counter({
      name: 'civildiy_events_consumed_total',
      help: 'Event deliveries handled by consumers, by outcome (ok, skipped, retried, dead_lettered)',
      labelNames: ['topic', 'type', 'group', 'outcome'],
      registers: [registry],
    });
  const handlerDuration =
    existing<Histogram<'topic' | 'type' | 'group'>>(registry, 'civildiy_event_handler_duration_seconds') ??
    new Histogram({
      name: 'civildiy_event_handler_duration_seconds',
      help: 'Time spent in event handlers',
      labelNames: ['topic', 'type', 'group'],
      registers: [registry],
    });

  const sources = sourcesOf(registry);
  // The three gauges of one scrape share one read per group: prom-client collects them concurrently,
  // so a read still in flight is reused, and forgotten once it has answered.
  let inFlight: Promise<Map<GroupStatsSource, GroupStats>> | undefined;
  const stats = (): Promise<Map<GroupStatsSource, GroupStats>> => {
    if (!inFlight) {
      const read = readStats();
      inFlight = read;
      void read.finally(() => setImmediate(() => (inFlight = inFlight === read ? undefined : inFlight)));
    }
    return inFlight;
  };
  const readStats = async (): Promise<Map<GroupStatsSource, GroupStats>> => {
    const unique = new Map<string, GroupStatsSource>();
    for (const source of sources) unique.set(`${source.topic}\u0000${source.group}`, source);
    const results = new Map<GroupStatsSource, GroupStats>();
    await Promise.all(
      [...unique.values()].map(async (source) => {
        const value = await withTimeout(source.read().catch(() => undefined));
        if (value) results.set(source, value);
      }),
    );
    return results;
  };
  if (!existing(registry, 'civildiy_event_consumer_lag')) {
    new Gauge({
      name: 'civildiy_event_consumer_lag',
      help: 'Events in the topic not yet delivered to the consumer group (groups consumed by this process)',
      labelNames: ['topic', 'group'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [source, value] of await stats()) if (value.lag !== null) this.set({ topic: source.topic, group: source.group }, value.lag);
      },
    });
  }
  if (!existing(registry, 'civildiy_event_consumer_pending')) {
    new Gauge({
      name: 'civildiy_event_consumer_pending',
      help: 'Events delivered to the consumer group and not yet acknowledged (groups consumed by this process)',
      labelNames: ['topic', 'group'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [source, value] of await stats()) this.set({ topic: source.topic, group: source.group }, value.pending);
      },
    });
  }

  if (!existing(registry, 'civildiy_event_consumer_partition_lag')) {
    new Gauge({
      name: 'civildiy_event_consumer_partition_lag',
      help: 'Events of one partition the consumer group has still to handle (Kafka; groups consumed by this process)',
      labelNames: ['topic', 'group', 'partition'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [source, value] of await stats()) {
          for (const partition of value.partitions ?? []) this.set({ topic: source.topic, group: source.group, partition: String(partition.partition) }, partition.lag);
        }
      },
    });
  }

  return {
    published,
    consumed,
    handlerDuration,
    track(source) {
      sources.add(source);
      return () => sources.delete(source);
    },
  };
}
