import type { z } from 'zod';
import { baseEnv, envInt } from '@civildiy/common';

/** feed-service environment (see .env.example). */
export const feedServiceEnv = baseEnv.extend({
  FEED_PORT: envInt(0, 65535).default(8104).describe('the HTTP port of feed-service'),
  FEED_CONCURRENCY: envInt(1, 500).default(16).describe('events projected in parallel by this process (one post or profile at a time still)'),
  FEED_TOMBSTONE_TTL_MS: envInt(60_000, 365 * 24 * 60 * 60 * 1000)
    .default(7 * 24 * 60 * 60 * 1000)
    .describe('how long a deleted or trimmed post keeps its version marker (ms); at least the event retention (default 7 days)'),
  FEED_REBUILD_PROGRESS_MS: envInt(50, 600_000).default(2_000).describe('how often a feed rebuild (`npm run feed:rebuild`, or `POST /feed/rebuild` in the service) checks and reports its progress (ms)'),
});
export type FeedServiceConfig = z.infer<typeof feedServiceEnv>;
