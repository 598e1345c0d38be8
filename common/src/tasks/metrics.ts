import { Counter, Gauge, register as globalRegistry, type Metric, type Registry } from 'prom-client';

/**
 * How one attempt ended, the `outcome` label of `civildiy_tasks_total` and
 * `civildiy_task_duration_seconds` (exactly one per attempt):
 * - `completed`: the handler returned a valid output;
 * - `retried`: the attempt failed and another one is scheduled;
 * - `failed`: the attempt failed permanently (`PermanentError`, invalid input, unknown task): the
 *   job became a dead letter without retry;
 * - `dead_lettered`: the last allowed attempt failed: the job became a dead letter;
 * - `deferred`: the handler could not start its work now through no fault of the job (an open
 *   circuit to a provider, see {@link deferralOf}): the job runs again later, the attempt not counted.
 */
export type TaskOutcome = 'completed' | 'retried' | 'failed' | 'dead_lettered' | 'deferred';

/** A queue whose job counts feed `civildiy_task_queue_depth` at scrape time. */
export interface QueueDepthSource {
  /** Identifies the queue across clients and workers (prefix + name), so it is counted once. */
  readonly key: string;
  readonly queue: string;
  counts(): Promise<Record<string, number>>;
}

/** The attempts of one task with one outcome: counted and timed without touching prom-client. */
export interface AttemptSeries {
  /** Counts one attempt that took `seconds`. */
  record(seconds: number): void;
}

/** The task-queue metrics of one registry (shared by every client and worker using it). */
export interface TaskMetrics {
  /** `civildiy_tasks_total{task,queue,outcome}`: attempts by outcome (updated at scrape time). */
  readonly tasks: Counter<'task' | 'queue' | 'outcome'>;
  /** `civildiy_task_dead_letters_total{queue,action}`: dead letters `redriven` or `discarded`. */
  readonly deadLetters: Counter<'queue' | 'action'>;
  /**
   * The series of `task`/`queue`/`outcome`, feeding `civildiy_tasks_total` and the histogram
   * `civildiy_task_duration_seconds{task,queue,outcome}`. Recording is a few additions (the worker
   * records every attempt); prom-client sees the totals when scraped.
   */
  series(task: string, queue: string, outcome: TaskOutcome): AttemptSeries;
  /** Adds a queue to the depth gauge; returns the function that removes it again. */
  addDepthSource(source: QueueDepthSource): () => void;
}

/** The job states reported by `civildiy_task_queue_depth{queue,state}` (`failed` = dead letters). */
export const DEPTH_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused', 'failed', 'completed'] as const;

/** Upper bounds (seconds) of `civildiy_task_duration_seconds`. */
export const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] as const;

type SeriesLabels = { task: string; queue: string; outcome: TaskOutcome };

class Series implements AttemptSeries {
  /** Attempts not yet added to the prom-client counter. */
  pending = 0;
  /** Per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  constructor(readonly labels: SeriesLabels) {}

  record(seconds: number): void {
    this.pending += 1;
    this.count += 1;
    this.sum += seconds;
    let index = 0;
    while (index < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[index]!) index++;
    this.buckets[index]! += 1;
  }
}

/**
 * `civildiy_task_duration_seconds` as a prom-client compatible metric (what the registry reads:
 * name, help, type, `get()`), fed by {@link Series}: prom-client's own histogram hashes the labels
 * on every observation, which costs more than the rest of a no-op attempt.
 */
class DurationHistogram {
  readonly name = 'civildiy_task_duration_seconds';
  readonly help = 'Duration of task attempts in seconds, by outcome.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['task', 'queue', 'outcome'];

  constructor(private readonly all: Map<string, Series>) {}

  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const series of this.all.values()) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((bound, index) => {
        cumulative += series.buckets[index]!;
        values.push({ labels: { ...series.labels, le: bound }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...series.labels, le: '+Inf' }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const series of this.all.values()) {
      series.buckets.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
}

const byRegistry = new WeakMap<Registry, TaskMetrics>();

/** A metric already in `registry` under `name` (from another instance) or a new one. */
function reuse<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

/**
 * The task metrics registered in `registry` (default: prom-client's global registry), created on
 * first use. Calling it again, from any number of clients and workers, returns the same metrics:
 * a second registration never throws.
 */
export function taskMetrics(registry: Registry = globalRegistry): TaskMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const sources = new Set<QueueDepthSource>();
  const all = new Map<string, Series>();
  const registers = [registry];
  const tasks = reuse(registry, 'civildiy_tasks_total', () =>
    new Counter({
      name: 'civildiy_tasks_total',
      help: 'Task attempts by outcome (completed, retried, failed, dead_lettered).',
      labelNames: ['task', 'queue', 'outcome'] as const,
      registers,
      collect() {
        for (const series of all.values()) {
          if (series.pending === 0) continue;
          this.inc(series.labels, series.pending);
          series.pending = 0;
        }
      },
    }));
  if (registry.getSingleMetric('civildiy_task_duration_seconds') === undefined) {
    registry.registerMetric(new DurationHistogram(all) as unknown as Metric);
  }
  const metrics: TaskMetrics = {
    tasks,
    deadLetters: reuse(registry, 'civildiy_task_dead_letters_total', () =>
      new Counter({ name: 'civildiy_task_dead_letters_total', help: 'Dead letters redriven or discarded by an operator.', labelNames: ['queue', 'action'] as const, registers })),
    series(task, queue, outcome) {
      const key = `${task}\u0000${queue}\u0000${outcome}`;
      let series = all.get(key);
      if (series === undefined) {
        series = new Series({ task, queue, outcome });
        all.set(key, series);
      }
      return series;
    },
    addDepthSource(source) {
      sources.add(source);
      return () => sources.delete(source);
    },
  };
  reuse(registry, 'civildiy_task_queue_depth', () =>
    new Gauge({
      name: 'civildiy_task_queue_depth',
      help: 'Jobs per queue and state, read from Redis at scrape time (failed = dead letters).',
      labelNames: ['queue', 'state'] as const,
      registers,
      async collect() {
        this.reset();
        const seen = new Set<string>();
        const unique = [...sources].filter((source) => !seen.has(source.key) && seen.add(source.key));
        await Promise.all(
          unique.map(async (source) => {
            const counts = await withDeadline(source.counts(), 2_000).catch(() => undefined);
            if (!counts) return; // Redis unreachable: report nothing rather than fail the scrape
            for (const [state, count] of Object.entries(counts)) this.inc({ queue: source.queue, state }, count);
          }),
        );
      },
    }));
  byRegistry.set(registry, metrics);
  return metrics;
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
