import type { Logger } from '@civildiy/common';
import type { ActivityLog } from './activity-log.ts';
import type { Activity, HistoryPoint, Overview } from './contract.ts';
import type { HistoryCollector } from './history-collector.ts';
import type { QueueStats } from './queue-stats.ts';
import type { ServiceProbe } from './service-probe.ts';
import type { StreamStats } from './stream-stats.ts';

/** What the monitor tells its listeners (the live updates): the event names of `GET /admin/live`. */
export type MonitorEvent = { event: 'overview'; data: Overview } | { event: 'point'; data: HistoryPoint } | { event: 'activity'; data: Activity };

/** Options of {@link DashboardMonitor}. */
export interface DashboardMonitorOptions {
  probe: ServiceProbe;
  queues: QueueStats;
  streams: StreamStats;
  history: HistoryCollector;
  activity: ActivityLog;
  /** Between two rounds (ms). */
  refreshMs: number;
  /** Seconds between two chart points. */
  stepSeconds: number;
  logger: Logger;
}

/**
 * The dashboard's one collection loop: every `refreshMs` it probes the services (which feeds the
 * metric window), reads the queues and streams, and publishes the overview; once per chart step it
 * appends a point to the history; and it passes on actions recorded since the last round (by this
 * dashboard, another one, or the ops CLI). Every connected page gets the same round: the work does
 * not grow with the number of pages.
 */
export class DashboardMonitor {
  private readonly listeners = new Set<(event: MonitorEvent) => void>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<Overview> | undefined;
  private current: Overview | undefined;
  private lastSlot = 0;
  private activityCursor: string | undefined;
  private closed = false;

  constructor(private readonly options: DashboardMonitorOptions) {}

  /**
   * Starts the rounds (the first at once): every `refreshMs` while a page listens, else once per
   * chart step — an unwatched dashboard keeps the history without scraping every service each
   * `refreshMs`.
   */
  start(): void {
    this.loop();
  }

  private readonly loop = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    void this.collect().finally(() => {
      if (this.closed) return;
      const stepMs = this.options.stepSeconds * 1000;
      // Unwatched: at the start of the next chart slot, so that no slot is skipped by drift.
      const delay = this.listeners.size > 0 ? this.options.refreshMs : stepMs - (Date.now() % stepMs) + 50;
      this.timer = setTimeout(this.loop, delay);
    });
  };

  /** The newest overview, or a fresh one when no round has finished yet. */
  async overview(): Promise<Overview> {
    return this.current ?? this.collect();
  }

  /** Calls `listener` with every event; returns the function that stops it. */
  subscribe(listener: (event: MonitorEvent) => void): () => void {
    const wasIdle = this.listeners.size === 0;
    this.listeners.add(listener);
    // Idle rounds are a chart step apart: the first page should not wait for the next one.
    if (wasIdle && this.timer !== undefined && !this.closed) {
      clearTimeout(this.timer);
      this.timer = setTimeout(this.loop, this.options.refreshMs);
    }
    return () => this.listeners.delete(listener);
  }

  /** Stops the rounds; resolves once a round in progress has finished. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.round?.catch(() => undefined);
    this.listeners.clear();
  }

  /** One round; a round already running is joined rather than doubled. */
  collect(): Promise<Overview> {
    this.round ??= this.runRound().finally(() => (this.round = undefined));
    return this.round;
  }

  private async runRound(): Promise<Overview> {
    const { probe, queues, streams, logger } = this.options;
    const failed = (what: string) => (error: unknown) => {
      logger.warn({ err: error }, `dashboard: could not read the ${what}`);
      return [];
    };
    const [services, queueStates, streamStates] = await Promise.all([
      probe.probeAll(),
      queues.read().catch(failed('task queues')),
      streams.read().catch(failed('event streams')),
    ]);
    const overview: Overview = {
      generatedAt: new Date().toISOString(),
      services,
      queues: queueStates,
      streams: streamStates,
      deadLetters: {
        tasks: queueStates.reduce((sum, queue) => sum + queue.counts.failed, 0),
        events: streamStates.reduce((sum, stream) => sum + stream.deadLetters, 0),
      },
    };
    this.current = overview;
    this.emit({ event: 'overview', data: overview });
    await this.appendPoint().catch((error: unknown) => logger.warn({ err: error }, 'dashboard: could not store the chart point'));
    await this.passOnActivity().catch((error: unknown) => logger.warn({ err: error }, 'dashboard: could not read the activity list'));
    return overview;
  }

  /** A point per chart step: the first round of a new slot writes it. */
  private async appendPoint(): Promise<void> {
    const step = this.options.stepSeconds;
    const slot = Math.floor(Date.now() / 1000 / step) * step;
    if (slot === this.lastSlot) return;
    this.lastSlot = slot;
    const point = await this.options.history.collect();
    this.emit({ event: 'point', data: point });
  }

  private async passOnActivity(): Promise<void> {
    const { activity } = this.options;
    if (this.activityCursor === undefined) {
      this.activityCursor = await activity.newestId();
      return;
    }
    for (const entry of await activity.after(this.activityCursor)) {
      this.activityCursor = entry.id;
      this.emit({ event: 'activity', data: entry });
    }
  }

  private emit(event: MonitorEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.options.logger.warn({ err: error }, 'dashboard: a live update listener failed');
      }
    }
  }
}
