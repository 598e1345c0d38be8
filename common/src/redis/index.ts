import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../logging/index.ts';

export { Redis } from 'ioredis';
export { isRedisUnavailable } from './redis-unavailable.ts';

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

/** How long a command of a {@link failFastRedisOptions} connection may take, by default, in ms. */
export const FAIL_FAST_COMMAND_TIMEOUT_MS = 2_000;

/**
 * ioredis options for a connection that serves requests: while Redis is down, reconnecting or not
 * answering (a stalled server keeps its connections open), a command rejects within
 * `commandTimeoutMs` (default {@link FAIL_FAST_COMMAND_TIMEOUT_MS}) instead of waiting for Redis, so
 * the request can answer 503. `maxRetriesPerRequest: 1` also drops commands queued during a
 * reconnect after the second failed attempt, rather than sending them late.
 *
 * Not for BullMQ workers and queue-event listeners (blocking reads need `maxRetriesPerRequest:
 * null` and no command timeout): give those their own connection (a URL, or {@link createRedis}'s
 * defaults). A BullMQ `Queue` (adding jobs, counting them) works on it.
 */
export function failFastRedisOptions(commandTimeoutMs = FAIL_FAST_COMMAND_TIMEOUT_MS): RedisOptions {
  return { maxRetriesPerRequest: 1, commandTimeout: commandTimeoutMs };
}

/**
 * A readiness check of `redis`: rejects at once while the connection is not established
 * (connecting, reconnecting after Redis went away), else resolves when Redis answers PING.
 */
export function redisReadiness(redis: Redis): () => Promise<unknown> {
  return async () => {
    if (redis.status !== 'ready') throw new Error(`not connected (${redis.status})`);
    return redis.ping();
  };
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
