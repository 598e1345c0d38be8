import { loadConfigOrExit } from '@civildiy/common';
import { startRuntime } from '@civildiy/common/runtime';
import { feedServiceEnv } from './config.ts';
import { abortRebuild, rebuildFeed } from './feed-rebuild.ts';

// `npm run feed:rebuild -w feed-service [-- --abort]`: rebuilds the feed read model from the event
// streams while feed-service keeps serving, then swaps (see feed-rebuild.ts). Ctrl-C stops it; run
// it again to resume, or with --abort to drop the unfinished generation.

const config = loadConfigOrExit(feedServiceEnv);
const { logger, shutdown, events, redis } = await startRuntime({ service: 'feed-rebuild', config });
const prefix = config.REDIS_KEY_PREFIX;

if (process.argv.includes('--abort')) {
  const generation = await abortRebuild({ admin: events.admin, redis, prefix });
  logger.info({ generation }, generation === undefined ? 'no feed rebuild in progress' : 'feed rebuild abandoned');
} else {
  const stop = new AbortController();
  const rebuild = rebuildFeed({
    subscriber: events.subscriber,
    admin: events.admin,
    redis,
    prefix,
    logger,
    tombstoneTtlMs: config.FEED_TOMBSTONE_TTL_MS,
    progressIntervalMs: config.FEED_REBUILD_PROGRESS_MS,
    onProgress: ({ generation, applied, ignored, lag, pending }) =>
      logger.info({ generation, applied, ignored, lag, pending }, `generation ${generation}: ${applied} events applied, ${ignored} unchanged, lag ${formatLag(lag)}, ${pending} pending`),
    signal: stop.signal,
  });
  // Ctrl-C / SIGTERM: the runtime's shutdown runs this step first, then closes the event bus and Redis.
  shutdown.add('feed rebuild', () => {
    stop.abort();
    return rebuild.catch(() => undefined);
  });
  try {
    const result = await rebuild;
    if (result.status === 'swapped') logger.info(result, `the feed now serves generation ${result.generation} (was ${result.previous})`);
    else logger.warn(result, 'feed rebuild interrupted; run it again to resume, or with --abort to drop it');
  } catch (error) {
    logger.error({ err: error }, 'feed rebuild failed; run it again to resume, or with --abort to drop it');
    process.exitCode = 1;
  }
}
await shutdown.run();
process.exit();

function formatLag(lag: Record<string, number | null>): string {
  return Object.entries(lag)
    .map(([topic, value]) => `${topic} ${value ?? '?'}`)
    .join(', ');
}
