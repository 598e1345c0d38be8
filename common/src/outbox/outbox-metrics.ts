import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';

/** What one database's outbox holds: rows not yet delivered, and rows marked failed (undeliverable). */
export interface OutboxCounts {
  pending: number;
  failed: number;
}

/** Counts one database's outbox rows on scrape; every running relay of the process adds its database. */
export type OutboxCounter = () => Promise<OutboxCounts>;

/** The counters of one registry, read once per scrape for both gauges. */
class CountSources {
  private readonly sources = new Set<OutboxCounter>();
  private reading: Promise<OutboxCounts> | undefined;

  add(source: OutboxCounter): () => void {
    this.sources.add(source);
    return () => this.sources.delete(source);
  }

  /** The sum over every source; both gauges of one scrape share one read. A source that fails counts nothing. */
  read(): Promise<OutboxCounts> {
    this.reading ??= this.sum().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async sum(): Promise<OutboxCounts> {
    const counts = await Promise.all([...this.sources].map((source) => source().catch(() => ({ pending: 0, failed: 0 }))));
    return counts.reduce((total, count) => ({ pending: total.pending + count.pending, failed: total.failed + count.failed }), { pending: 0, failed: 0 });
  }
}

// Shared across copies of this module (one process may load `common` twice), keyed by registry.
const globalKey = '__civildiyOutboxCountSources';
function sourcesOf(registry: Registry): CountSources {
  const holder = globalThis as typeof globalThis & { [globalKey]?: WeakMap<Registry, CountSources> };
  const byRegistry = (holder[globalKey] ??= new WeakMap());
  let sources = byRegistry.get(registry);
  if (!sources) byRegistry.set(registry, (sources = new CountSources()));
  return sources;
}

/** The outbox metrics of one registry. */
export interface OutboxMetrics {
  /** `civildiy_outbox_published_total{kind,outcome}`: delivery attempts by row kind and `sent`/`failed`. */
  published: Counter<'kind' | 'outcome'>;
  /** Adds a database's counts to `civildiy_outbox_pending` and `civildiy_outbox_failed`; returns its removal. */
  addCountSource(source: OutboxCounter): () => void;
}

/**
 * Registers (or reuses, when already registered in `registry`) the outbox metrics:
 * `civildiy_outbox_pending` and `civildiy_outbox_failed` (gauges, counted from the databases on each
 * scrape) and `civildiy_outbox_published_total{kind,outcome}`. Default registry: prom-client's
 * global one.
 */
export function outboxMetrics(registry: Registry = defaultRegistry): OutboxMetrics {
  const counts = sourcesOf(registry);
  if (!registry.getSingleMetric('civildiy_outbox_pending')) {
    new Gauge({
      name: 'civildiy_outbox_pending',
      help: 'Outbox rows not yet delivered (events and tasks), rows marked failed excluded',
      registers: [registry],
      async collect() {
        this.set((await counts.read()).pending);
      },
    });
  }
  if (!registry.getSingleMetric('civildiy_outbox_failed')) {
    new Gauge({
      name: 'civildiy_outbox_failed',
      help: 'Outbox rows marked failed: undeliverable (unknown task, invalid input, permanent broker error) until redriven',
      registers: [registry],
      async collect() {
        this.set((await counts.read()).failed);
      },
    });
  }
  const published =
    (registry.getSingleMetric('civildiy_outbox_published_total') as Counter<'kind' | 'outcome'> | undefined) ??
    new Counter({
      name: 'civildiy_outbox_published_total',
      help: 'Outbox delivery attempts by row kind (event, task) and outcome (sent, failed)',
      labelNames: ['kind', 'outcome'] as const,
      registers: [registry],
    });
  return { published, addCountSource: (source) => counts.add(source) };
}
