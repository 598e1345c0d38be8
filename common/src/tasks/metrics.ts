import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client';

/**
 * How one attempt ended, the `outcome` label of `civildiy_tasks_total` and
 * `civildiy_task_duration_seconds` (exactly one per attempt):
 * - `completed`: the handler returned a valid output;
 * - `retried`: the attempt failed and another one is scheduled;
 * - `failed`: the attempt failed permanently (`PermanentError`, invalid input, unknown task): the
 *   job became a dead letter without retry;
 * - `dead_lettered`: the last allowed attempt failed: the job became a dead letter.
 */
export type TaskOutcome = 'completed' | 'retried' | 'failed' | 'dead_lettered';

/** A queue whose job counts feed `civildiy_task_queue_depth` at scrape time. */
export interface QueueDepthSource {
  /** Identifies the queue across clients and workers (prefix + name), so it is counted once. */
  readonly key: string;
  readonly queue: string;
  counts(): Promise<Record<string, number>>;
}

/** The task-queue metrics of one registry (shared by every client and worker using it). */
export interface TaskMetrics {
  /** `civildiy_tasks_total{task,queue,outcome}`: attempts by outcome. */
  readonly tasks: Counter<'task' | 'queue' | 'outcome'>;
  /** `civildiy_task_duration_seconds{task,queue,outcome}`: attempt duration. */
  readonly duration: Histogram<'task' | 'queue' | 'outcome'>;
  /** `civildiy_task_dead_letters_total{queue,action}`: dead letters `redriven` or `discarded`. */
  readonly deadLetters: Counter<'queue' | 'action'>;
  /** Adds a queue to the depth gauge; returns the function that removes it again. */
  addDepthSource(source: QueueDepthSource): () => void;
}

/** The job states reported by `civildiy_task_queue_depth{queue,state}` (`failed` = dead letters). */
export const DEPTH_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused', 'failed', 'completed'] as const;

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
  const registers = [registry];
  const metrics: TaskMetrics = {
    tasks: reuse(registry, 'civildiy_tasks_total', () =>
      new Counter({ name: 'civildiy_tasks_total', help: 'Task attempts by outcome (completed, retried, failed, dead_lettered).', labelNames: ['task', 'queue', 'outcome'] as const, registers })),
    duration: reuse(registry, 'civildiy_task_duration_seconds', () =>
      new Histogram({
        name: 'civildiy_task_duration_seconds',
        help: 'Duration of task attempts in seconds, by outcome.',
        labelNames: ['task', 'queue', 'outcome'] as const,
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
        registers,
      })),
    deadLetters: reuse(registry, 'civildiy_task_dead_letters_total', () =>
      new Counter({ name: 'civildiy_task_dead_letters_total', help: 'Dead letters redriven or discarded by an operator.', labelNames: ['queue', 'action'] as const, registers })),
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
