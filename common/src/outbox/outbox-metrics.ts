import { Counter, Gauge, register as defaultRegistry, type Registry } from 'prom-client';

/** Counts pending outbox rows on scrape; every running relay of the process adds its database. */
export type PendingCounter = () => Promise<number>;

const pendingSources = new WeakMap<object, Set<PendingCounter>>();

/** The outbox metrics of one registry. */
export interface OutboxMetrics {
  /** `civildiy_outbox_published_total{kind,outcome}`: deliveries by row kind and `sent`/`failed`. */
  published: Counter<'kind' | 'outcome'>;
  /** Adds a pending-row counter to `civildiy_outbox_pending`; returns its removal. */
  addPendingSource(source: PendingCounter): () => void;
}

/**
 * Registers (or reuses, when already registered in `registry`) the outbox metrics:
 * `civildiy_outbox_pending` (gauge, counted from the database on each scrape) and
 * `civildiy_outbox_published_total{kind,outcome}`. Default registry: prom-client's global one.
 */
export function outboxMetrics(registry: Registry = defaultRegistry): OutboxMetrics {
  const existingPending = registry.getSingleMetric('civildiy_outbox_pending');
  const pending =
    existingPending ??
    new Gauge({
      name: 'civildiy_outbox_pending',
      help: 'Outbox rows not yet delivered (events and tasks)',
      registers: [registry],
      async collect() {
        let total = 0;
        for (const source of pendingSources.get(this) ?? []) total += await source().catch(() => 0);
        this.set(total);
      },
    });
  if (!pendingSources.has(pending)) pendingSources.set(pending, new Set());
  const published =
    (registry.getSingleMetric('civildiy_outbox_published_total') as Counter<'kind' | 'outcome'> | undefined) ??
    new Counter({
      name: 'civildiy_outbox_published_total',
      help: 'Outbox deliveries by row kind (event, task) and outcome (sent, failed)',
      labelNames: ['kind', 'outcome'] as const,
      registers: [registry],
    });
  return {
    published,
    addPendingSource(source) {
      const sources = pendingSources.get(pending);
      sources?.add(source);
      return () => sources?.delete(source);
    },
  };
}
