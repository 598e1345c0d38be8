import { createRedis, type Redis } from '../redis/index.ts';
import type { Logger } from '../logging/index.ts';

/** A Redis connection for the task queue: an ioredis instance (shared, not closed by us) or a URL. */
export type TaskConnection = Redis | string;

/** A resolved connection and whether we created it (and so must close it). */
export interface OwnedConnection {
  readonly redis: Redis;
  readonly owned: boolean;
}

/** Turns a {@link TaskConnection} into an ioredis client (created with `maxRetriesPerRequest: null`). */
export function resolveConnection(connection: TaskConnection, name: string, logger: Logger): OwnedConnection {
  if (typeof connection === 'string') return { redis: createRedis(connection, { name, logger }), owned: true };
  return { redis: connection, owned: false };
}

/** Closes a connection we created; leaves a shared one alone. */
export async function releaseConnection(connection: OwnedConnection): Promise<void> {
  if (!connection.owned) return;
  try {
    await connection.redis.quit();
  } catch {
    connection.redis.disconnect();
  }
}
