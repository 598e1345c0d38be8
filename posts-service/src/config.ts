import { z } from 'zod';
import { baseEnv, envInt } from '@civildiy/common';

/** posts-service environment (see .env.example). */
export const postsServiceEnv = baseEnv.extend({
  POSTS_PORT: envInt(0, 65535).default(8103).describe('the HTTP port of posts-service'),
  POSTS_DATABASE_URL: z.string().optional().describe('a postgres:// URL; unset = embedded PGlite in DATA_DIR/posts-service'),
  POSTS_EXPIRY_INTERVAL_MS: envInt(1_000, 86_400_000)
    .default(60_000)
    .describe('how often the posts.expire task removes expired posts (ms); reads hide them at once regardless'),
});
export type PostsServiceConfig = z.infer<typeof postsServiceEnv>;
