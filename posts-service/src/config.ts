import { z } from 'zod';
import { baseEnv, envInt } from '@civildiy/common';

/** posts-service environment (see .env.example). */
export const postsServiceEnv = baseEnv
  .extend({
    POSTS_PORT: envInt(0, 65535).default(8103).describe('the HTTP port of posts-service'),
    POSTS_STORE: z
      .enum(['postgres', 'mongodb'])
      .default('postgres')
      .describe('where posts-service keeps posts: postgres (POSTS_DATABASE_URL, or embedded PGlite) or mongodb (POSTS_MONGODB_URL; no Postgres database is opened)'),
    POSTS_DATABASE_URL: z.string().optional().describe('a postgres:// URL; unset = embedded PGlite in DATA_DIR/posts-service'),
    POSTS_MONGODB_URL: z
      .string()
      .regex(/^mongodb(\+srv)?:\/\//, 'not a mongodb:// URL')
      .optional()
      .describe('POSTS_STORE=mongodb: a mongodb:// URL naming the database, e.g. mongodb://mongo:27017/posts?replicaSet=rs0 (required then)'),
    POSTS_EXPIRY_INTERVAL_MS: envInt(1_000, 86_400_000)
      .default(60_000)
      .describe('how often the posts.expire task removes expired posts (ms); reads hide them at once regardless'),
  })
  .refine((config) => config.POSTS_STORE !== 'mongodb' || config.POSTS_MONGODB_URL !== undefined, {
    path: ['POSTS_MONGODB_URL'],
    message: 'required when POSTS_STORE=mongodb',
  });
export type PostsServiceConfig = z.infer<typeof postsServiceEnv>;
