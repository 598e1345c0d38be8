import type { EventBusAdmin } from '@civildiy/common/events';
import type { StreamStatus } from './contract.ts';
import type { MetricWindow } from './metric-window.ts';

/** The window of the delivery rates. */
const RATE_WINDOW_MS = 5 * 60_000;
/** Deliveries a group handled (acknowledged): `civildiy_events_consumed_total{outcome}`. */
const HANDLED_OUTCOMES = ['ok', 'skipped'];
/** Dead letters counted per topic at most, each round (the admin port lists them; it has no count). */
export const DEAD_LETTER_COUNT_LIMIT = 1_000;

/** Options of {@link StreamStats}. */
export interface StreamStatsOptions {
  /** The topics to report (every topic of the event contracts). */
  topics: readonly string[];
  /** The event bus's admin port (whichever adapter `EVENT_BUS` chose). */
  admin: EventBusAdmin;
  transport: StreamStatus['transport'];
  /** The services' scraped metrics (delivery rates); without them the rates are null. */
  metrics?: MetricWindow;
}

/**
 * Every event topic's consumer groups (lag, pending, consumers) and dead letters through the bus's
 * admin port, and each group's delivery rate from the consumers' `civildiy_events_consumed_total`.
 */
export class StreamStats {
  constructor(private readonly options: StreamStatsOptions) {}

  /** The state of every topic, in contract order. */
  async read(now = Date.now()): Promise<StreamStatus[]> {
    return Promise.all(this.options.topics.map((topic) => this.readTopic(topic, now)));
  }

  private async readTopic(topic: string, now: number): Promise<StreamStatus> {
    const [groups, deadLetters] = await Promise.all([this.options.admin.groups(topic), this.options.admin.deadLetters(topic, { limit: DEAD_LETTER_COUNT_LIMIT })]);
    const perMinute = (group: string) => {
      const rate = this.options.metrics?.perMinute({ name: 'civildiy_events_consumed_total', labels: { topic, group, outcome: HANDLED_OUTCOMES } }, RATE_WINDOW_MS, now);
      return rate === undefined || rate === null ? null : Math.round(rate * 100) / 100;
    };
    return {
      topic,
      transport: this.options.transport,
      groups: groups.map((group) => ({
        group: group.name,
        consumers: group.consumers,
        lag: group.lag,
        pending: group.pending,
        deliveredPerMinute: perMinute(group.name),
      })),
      deadLetters: deadLetters.length,
    };
  }
}
