import { z } from 'zod';
import type { Logger } from '@civildiy/common';
import { defineTask, type TaskWorker } from '@civildiy/common/tasks';
import { abortReindex, reindexState, startReindex } from './search-reindex.ts';
import { describeSpace, type EmbeddingSpace, type SearchDb } from './search-state.ts';

const Counts = z.object({ pending: z.number().int(), claimed: z.number().int(), done: z.number().int(), failed: z.number().int() });

/** What every `search.reindex` action answers: where the reindex stands afterwards. */
export const ReindexAnswer = z.object({
  activeGeneration: z.number().int(),
  model: z.string().nullable().describe('the model of the vectors searches read (and queries are embedded with)'),
  dimensions: z.number().int().nullable().describe('their dimension'),
  building: z
    .object({
      generation: z.number().int(),
      model: z.string().nullable().describe('the model the new generation is embedded with'),
      dimensions: z.number().int().nullable(),
      startedAt: z.string().nullable(),
      total: z.number().int(),
      counts: Counts,
    })
    .nullable(),
  /** `start`: the generation being built, whether it was already under way, and the rows copied into it. */
  started: z.object({ generation: z.number().int(), resumed: z.boolean(), copied: z.number().int() }).optional(),
  /** `abort`: the generation dropped, `null` when none was being built. */
  aborted: z.number().int().nullable().optional(),
});
export type ReindexAnswer = z.infer<typeof ReindexAnswer>;

/**
 * Controls the reindex of a running search-service (`npm run search:reindex` sends it): `start`
 * (or resume), `status`, `abort`. Internal to search-service, which consumes queue
 * `search-maintenance` itself: the reindex runs where the database is open (PGlite allows one
 * process), and the broker is all the command line needs.
 */
export const reindexControl = defineTask({
  name: 'search.reindex',
  queue: 'search-maintenance',
  input: z.object({ action: z.enum(['start', 'status', 'abort']) }),
  output: ReindexAnswer,
  retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 500 } },
  timeoutMs: 120_000,
  retentionMs: 60 * 60_000,
  description: 'Starts, reports or aborts a reindex of the search index (internal to search-service).',
});

/** Where an action is logged: the job's logger, or the request's (it names the operator). */
type ActionLogger = Pick<Logger, 'info' | 'warn'>;

/**
 * The reindex actions as search-service runs them, for its task (`npm run search:reindex`) and its
 * operations routes alike: `start` (or resume) reindexes into `space` (the configured model and
 * dimension) and wakes the index batcher and the generation switcher through `wake`, so the new
 * generation's rows are claimed at once.
 */
export class ReindexControl {
  constructor(private readonly deps: { db: SearchDb; space: EmbeddingSpace; wake: () => void }) {}

  /** Starts a reindex, or resumes the one under way. */
  async start(logger: ActionLogger): Promise<ReindexAnswer> {
    const started = await startReindex(this.deps.db, this.deps.space);
    logger.info(
      started,
      started.resumed ? `reindex into generation ${started.generation} under way` : `reindex into generation ${started.generation}, ${describeSpace(this.deps.space)}, started`,
    );
    this.deps.wake();
    return { ...(await reindexState(this.deps.db)), started };
  }

  /** Where the reindex stands. */
  status(): Promise<ReindexAnswer> {
    return reindexState(this.deps.db);
  }

  /** Drops the generation being built (`aborted: null` when none was). */
  async abort(logger: ActionLogger): Promise<ReindexAnswer> {
    const aborted = (await abortReindex(this.deps.db)) ?? null;
    if (aborted !== null) logger.warn({ generation: aborted }, `reindex into generation ${aborted} aborted`);
    return { ...(await reindexState(this.deps.db)), aborted };
  }
}

/** Runs `search.reindex` on search-service's own task worker. */
export function handleReindexControl(worker: TaskWorker, control: ReindexControl): void {
  worker.handle(reindexControl, async ({ action }, ctx) => {
    if (action === 'start') return control.start(ctx.logger);
    if (action === 'abort') return control.abort(ctx.logger);
    return control.status();
  });
}
