import { z } from 'zod';
import { ConflictError, NotFoundError, type Logger } from '@civildiy/common';
import type { Closable } from '@civildiy/common/runtime';
import { FeedGenerations } from './feed-generations.ts';
import { abortRebuild, rebuildFeed, RebuildProgress, RebuildResult, type RebuildOptions } from './feed-rebuild.ts';

/** Where feed rebuilds stand, as `GET /feed/rebuild` answers. */
export const RebuildState = z.object({
  servedGeneration: z.number().int().describe('the generation the feed serves'),
  rebuild: z
    .object({ generation: z.number().int(), startedAt: z.string() })
    .nullable()
    .describe('the rebuild marked in Redis: running, or interrupted (POST resumes it, DELETE drops it); null when none'),
  running: z.boolean().describe('whether this process runs a rebuild now'),
  progress: RebuildProgress.nullable().describe("this process's running rebuild, as last reported"),
  last: RebuildResult.nullable().describe('how the last rebuild this process ran ended'),
  lastError: z.string().nullable().describe('why the last rebuild this process ran failed, if it did (run it again to resume)'),
});
export type RebuildState = z.infer<typeof RebuildState>;

/** What `POST /feed/rebuild` answers: the rebuild it started or resumed. */
export const RebuildStarted = z.object({ generation: z.number().int(), resumed: z.boolean(), startedAt: z.string() });
export type RebuildStarted = z.infer<typeof RebuildStarted>;

/** Options of {@link RebuildRunner}: those of `rebuildFeed` it passes on. */
export type RebuildRunnerOptions = Omit<RebuildOptions, 'signal' | 'onProgress' | 'onStarted'>;

interface Run {
  stop: AbortController;
  done: Promise<void>;
  progress: RebuildProgress | null;
}

/**
 * Runs feed rebuilds (see feed-rebuild.ts) in the background of the service process, one at a time
 * in this process, for the operations routes: start (or resume an interrupted one), report, abort.
 * Closing it stops a running rebuild at once, leaving it marked to be resumed.
 */
export class RebuildRunner implements Closable {
  private run: Run | undefined;
  private last: RebuildResult | null = null;
  private lastError: string | null = null;
  private readonly generations: FeedGenerations;
  private closed = false;

  constructor(private readonly options: RebuildRunnerOptions) {
    this.generations = new FeedGenerations(options.redis, options.prefix);
  }

  /**
   * Starts a rebuild, or resumes the one marked, and resolves once it is marked (the replay goes on
   * in the background).
   * @throws ConflictError 409 `feed.rebuild_running` while this process runs one.
   */
  async start(logger: Pick<Logger, 'info'>): Promise<RebuildStarted> {
    if (this.run) throw new ConflictError('A feed rebuild is already running in this process', 'feed.rebuild_running', { details: { generation: this.run.progress?.generation } });
    if (this.closed) throw new ConflictError('feed-service is shutting down', 'feed.shutting_down');
    const stop = new AbortController();
    const run: Run = { stop, done: Promise.resolve(), progress: null };
    this.run = run;
    return new Promise<RebuildStarted>((resolve, reject) => {
      run.done = rebuildFeed({
        ...this.options,
        signal: stop.signal,
        onStarted: (marker) => {
          logger.info({ generation: marker.generation, resumed: marker.resumed }, marker.resumed ? 'feed rebuild resumed' : 'feed rebuild started');
          resolve({ generation: marker.generation, resumed: marker.resumed, startedAt: marker.startedAt });
        },
        onProgress: (progress) => {
          run.progress = progress;
          this.options.logger.debug(progress, 'feed rebuild progress');
        },
      }).then(
        (result) => {
          this.last = result;
          this.lastError = null;
          this.options.logger.info(result, result.status === 'swapped' ? `the feed now serves generation ${result.generation}` : 'feed rebuild interrupted; start it again to resume');
        },
        (error: unknown) => {
          this.lastError = error instanceof Error ? error.message : String(error);
          this.options.logger.error({ err: error }, 'feed rebuild failed; start it again to resume, or abort it');
          reject(error);
        },
      ).finally(() => {
        if (this.run === run) this.run = undefined;
      });
    });
  }

  /** Where rebuilds stand: the marker in Redis and this process's run. */
  async state(): Promise<RebuildState> {
    const [servedGeneration, marker] = await Promise.all([this.generations.current(), this.generations.rebuild()]);
    return {
      servedGeneration,
      rebuild: marker ? { generation: marker.generation, startedAt: marker.startedAt } : null,
      running: this.run !== undefined,
      progress: this.run?.progress ?? null,
      last: this.last,
      lastError: this.lastError,
    };
  }

  /**
   * Stops this process's rebuild, if one runs, and drops the marked rebuild (its generation and
   * replay group). Resolves with the generation dropped.
   * @throws NotFoundError 404 `feed.rebuild_not_found` when no rebuild is marked.
   */
  async abort(logger: Pick<Logger, 'warn'>): Promise<{ aborted: number }> {
    await this.stopRun();
    const aborted = await abortRebuild({ admin: this.options.admin, redis: this.options.redis, prefix: this.options.prefix });
    if (aborted === undefined) throw new NotFoundError('No feed rebuild is in progress', 'feed.rebuild_not_found');
    logger.warn({ generation: aborted }, `feed rebuild of generation ${aborted} aborted`);
    return { aborted };
  }

  /**
   * Stops a running rebuild (it stays marked, to be resumed); no new one starts. The replay stops at
   * its next progress check, which the stop wakes at once, so this takes one Redis round of checks.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.stopRun();
  }

  private async stopRun(): Promise<void> {
    const run = this.run;
    if (!run) return;
    run.stop.abort();
    await run.done.catch(() => undefined);
  }
}
