import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client';

/** What a consumer did with one delivery (label `outcome` of `civildiy_events_consumed_total`). */
export type ConsumeOutcome = 'ok' | 'skipped' | 'retried' | 'dead_lettered';

/** A live consumer group whose lag and pending count are reported at scrape time. */
export interface GroupStatsSource {
  topic: string;
  group: string;
  /** Reads the group's current lag (`null` when unknown) and pending count. */
  read(): Promise<{ lag: number | null; pending: number } | undefined>;
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
  // Both gauges are filled by one read per group at scrape time.
  const stats = async (): Promise<Map<GroupStatsSource, { lag: number | null; pending: number }>> => {
    const unique = new Map<string, GroupStatsSource>();
    for (const source of sources) unique.set(`${source.topic}\u0000${source.group}`, source);
    const results = new Map<GroupStatsSource, { lag: number | null; pending: number }>();
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
