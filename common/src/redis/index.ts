import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logging/index.ts';

export { Redis } from 'ioredis';

/** Options of {@link createRedis}. */
export interface CreateRedisOptions {
  /** Connection name shown by `CLIENT LIST`. */
  name: string;
  /** Where connection errors are logged. Without it they are ignored (ioredis reconnects by itself). */
  logger?: Logger;
  /** Extra ioredis options. `maxRetriesPerRequest` defaults to `null`, as BullMQ workers require. */
  options?: RedisOptions;
}

/**
 * An ioredis client for `url` with an error listener (an unhandled `error` event would crash the
 * process) and the settings BullMQ needs.
 */
export function createRedis(url: string, { name, logger, options }: CreateRedisOptions): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null, connectionName: name, ...options });
  let lastLogged = 0;
  redis.on('error', (error: Error) => {
    // A down Redis emits an error per reconnect attempt; one line every 5 s is enough.
    const now = Date.now();
    if (logger && now - lastLogged > 5_000) {
      lastLogged = now;
      logger.warn({ err: error, connection: name }, 'redis connection error');
    }
  });
  return redis;
}

/**
 * Resolves when `url` answers PING within `timeoutMs`, rejects otherwise. Used at start-up to give a
 * clear message instead of endless reconnect attempts.
 */
export async function pingRedis(url: string, timeoutMs = 2_000): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: timeoutMs, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } finally {
    redis.disconnect();
  }
}
