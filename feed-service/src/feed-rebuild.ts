import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import type { Logger } from '@civildiy/common';
import type { EventBusAdmin, EventSubscriber } from '@civildiy/common/events';
import type { Redis } from '@civildiy/common/redis';
import { FeedGenerations, type RebuildMarker } from './feed-generations.ts';
import { FeedProjection } from './feed-projection.ts';
import { FEED_TOPICS, subscribeToFeedEvents } from './handlers.ts';

/*
 * Rebuilding the read model without downtime.
 *
 * 1. Mark: `feed:rebuild` names a new generation n+1 (numbers are never reused). From the moment
 *    the marker exists, the live projection applies every event to the served generation n AND to
 *    n+1, inside the same script that reads the marker — so each live event lands in n+1 either
 *    through that dual write or (if it was applied before the marker) through the replay below.
 * 2. Replay: a fresh consumer group replays posts-events and profiles-events from their start into
 *    n+1 only. The projection is idempotent and version-guarded, so the dual-written events it meets
 *    again, in any order, change nothing.
 * 3. Caught up: once the replay group has no lag and nothing pending on every topic, it has applied
 *    every event published before the marker; everything after the marker is (or will be, however
 *    far behind the live consumer is) dual-written or applied to n+1 after the swap.
 * 4. Swap: one script sets `feed:generation` to n+1 and deletes the marker. Readers and the live
 *    projection read the pointer inside their scripts, so each sees the old or the new generation,
 *    never a mix. Then the replay group and generation n are deleted.
 *
 * An interrupted rebuild leaves its marker: running it again resumes its group; `--abort` drops it.
 */

/** How a rebuild is doing (reported every `progressIntervalMs`). */
export const RebuildProgress = z.object({
  generation: z.number().int(),
  applied: z.number().int().describe('events that changed the new generation'),
  ignored: z.number().int().describe('events that changed nothing there (duplicates, older versions: already dual-written)'),
  lag: z.record(z.string(), z.number().int().nullable()).describe('events per topic not yet delivered to the replay group (null when the transport cannot tell)'),
  pending: z.number().int().describe('events delivered to the replay group and not yet applied'),
  caughtUp: z.boolean().describe('whether it has caught up (it swaps next)'),
});
export type RebuildProgress = z.infer<typeof RebuildProgress>;

/** How a rebuild ended. */
export const RebuildResult = z.object({
  status: z.enum(['swapped', 'interrupted']).describe('swapped: the new generation is served; interrupted: stopped (run it again to resume)'),
  generation: z.number().int(),
  previous: z.number().int().optional().describe('the generation served before the swap (deleted)'),
  resumed: z.boolean().describe('whether it continued a rebuild interrupted earlier'),
  applied: z.number().int(),
  ignored: z.number().int(),
  durationMs: z.number().int(),
});
export type RebuildResult = z.infer<typeof RebuildResult>;

/** Options of {@link rebuildFeed}. */
export interface RebuildOptions {
  /** Where the replay group reads the topics. */
  subscriber: EventSubscriber;
  /** Creates, watches and deletes the replay group. */
  admin: EventBusAdmin;
  redis: Redis;
  /** `REDIS_KEY_PREFIX`. */
  prefix: string;
  logger: Logger;
  /** As the live projection's. Default: 7 days. */
  tombstoneTtlMs?: number;
  /** Events replayed in parallel. Default: 32. */
  concurrency?: number;
  /** How often progress is checked and reported. Default: 2 s. */
  progressIntervalMs?: number;
  /** Default: an info log line. */
  onProgress?: (progress: RebuildProgress) => void;
  /** Stops the replay; the rebuild stays marked, to be resumed. */
  signal?: AbortSignal;
  /** Called once the rebuild is marked (new or resumed), before the replay. */
  onStarted?: (marker: RebuildMarker & { resumed: boolean }) => void;
}

/**
 * Replays the topics from their start into a new generation of the read model while the current
 * one keeps serving, then swaps to it atomically (protocol above). Resolves when it has swapped or
 * was interrupted.
 */
export async function rebuildFeed(options: RebuildOptions): Promise<RebuildResult> {
  const started = performance.now();
  const { admin, logger } = options;
  const generations = new FeedGenerations(options.redis, options.prefix);
  const marker = await generations.beginRebuild();
  if (!marker.resumed) {
    for (const topic of FEED_TOPICS) await admin.resetGroup(topic, marker.group, 'start');
  }
  logger.info({ generation: marker.generation, group: marker.group, resumed: marker.resumed }, marker.resumed ? 'resuming the feed rebuild' : 'feed rebuild started');
  options.onStarted?.(marker);

  const counts = { applied: 0, ignored: 0 };
  const projection = new FeedProjection({
    redis: options.redis,
    prefix: options.prefix,
    generation: marker.generation,
    ...(options.tombstoneTtlMs === undefined ? {} : { tombstoneTtlMs: options.tombstoneTtlMs }),
  });
  const subscription = subscribeToFeedEvents({
    subscriber: options.subscriber,
    projection,
    group: marker.group,
    concurrency: options.concurrency ?? 32,
    onOutcome: (_type, outcome) => {
      if (outcome === 'applied') counts.applied += 1;
      else counts.ignored += 1;
    },
  });
  const report = options.onProgress ?? ((progress: RebuildProgress) => logger.info(progress, 'feed rebuild progress'));
  const result = (status: RebuildResult['status'], previous?: number): RebuildResult => ({
    status,
    generation: marker.generation,
    ...(previous === undefined ? {} : { previous }),
    resumed: marker.resumed,
    ...counts,
    durationMs: Math.round(performance.now() - started),
  });

  try {
    await subscription.ready;
    for (;;) {
      if (options.signal?.aborted) return result('interrupted');
      const progress = { generation: marker.generation, ...counts, ...(await replayState(admin, marker)) };
      report(progress);
      if (progress.caughtUp) break;
      await delay(options.progressIntervalMs ?? 2_000, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
    }
    await subscription.close();
    const previous = await generations.swap(marker.generation);
    if (previous === undefined) throw new Error(`The rebuild of generation ${marker.generation} was ended elsewhere; nothing was swapped`);
    for (const topic of FEED_TOPICS) await admin.deleteGroup(topic, marker.group);
    const deleted = await generations.drop(previous);
    logger.info({ generation: marker.generation, previous, deletedKeys: deleted }, 'feed rebuild swapped in');
    return result('swapped', previous);
  } finally {
    await subscription.close();
  }
}

/** Where the replay group stands on every topic. */
async function replayState(admin: EventBusAdmin, marker: RebuildMarker): Promise<Pick<RebuildProgress, 'lag' | 'pending' | 'caughtUp'>> {
  const lag: Record<string, number | null> = {};
  let pending = 0;
  let caughtUp = true;
  for (const topic of FEED_TOPICS) {
    const group = (await admin.groups(topic)).find((info) => info.name === marker.group);
    lag[topic] = group ? group.lag : null;
    pending += group?.pending ?? 0;
    if (!group || group.lag !== 0 || group.pending !== 0) caughtUp = false;
  }
  return { lag, pending, caughtUp };
}

/**
 * Abandons the rebuild in progress (e.g. after its process died and resuming is not wanted): the
 * live projection stops writing its generation, then its group and keys are deleted. Resolves with
 * the abandoned generation, or `undefined` when none was in progress.
 */
export async function abortRebuild(options: { admin: EventBusAdmin; redis: Redis; prefix: string }): Promise<number | undefined> {
  const generations = new FeedGenerations(options.redis, options.prefix);
  const marker = await generations.rebuild();
  if (!marker || !(await generations.endRebuild(marker.generation))) return undefined;
  for (const topic of FEED_TOPICS) await options.admin.deleteGroup(topic, marker.group);
  await generations.drop(marker.generation);
  return marker.generation;
}
