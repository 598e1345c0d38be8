import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logging/index.ts';
import { createRedis, failFastRedisOptions, isRedisUnavailable, redisReadiness, type Redis } from '../src/redis/index.ts';
import { createServiceApp } from '../src/service/index.ts';
import { PrivateRedisServer, freePort } from '../src/testing/index.ts';

/**
 * The connection a service's requests use must not wait for a Redis that is away. These tests need
 * a Redis they can take away, so they run their own `redis-server` (the shared test Redis is left
 * alone), stopped (SIGSTOP) as when it hangs with its connections open, or not there at all.
 */
describe('a fail-fast Redis connection (failFastRedisOptions) against a Redis that goes away', () => {
  let server: PrivateRedisServer;
  const connections: Redis[] = [];

  function connect(): Redis {
    const redis = createRedis(server.url, { name: 'fail-fast-test', options: failFastRedisOptions(300) });
    connections.push(redis);
    return redis;
  }

  beforeAll(async () => {
    server = await PrivateRedisServer.start();
  });
  afterEach(() => {
    server.resume();
    for (const redis of connections.splice(0)) redis.disconnect();
  });
  afterAll(() => server.remove());

  it('while Redis does not answer, a command is rejected instead of waiting, and readiness says down', async () => {
    const redis = connect();
    await expect(redis.set('fail-fast:key', 'before')).resolves.toBe('OK');
    server.stall();

    await expect(redis.get('fail-fast:key')).rejects.toThrow(/timed out/i);
    await expect(redisReadiness(redis)()).rejects.toThrow(/timed out/i);

    server.resume();
    await expect(redis.get('fail-fast:key')).resolves.toBe('before');
    await expect(redisReadiness(redis)()).resolves.toBe('PONG');
  });

  it('readiness says down at once while the connection is not established', async () => {
    const redis = createRedis(`redis://127.0.0.1:${await freePort()}`, { name: 'fail-fast-test', options: { ...failFastRedisOptions(300), lazyConnect: true } });
    connections.push(redis);
    await expect(redisReadiness(redis)()).rejects.toThrow(/not connected \(wait\)/);
    void redis.connect().catch(() => undefined);
    // Nothing listens on that port: the client keeps reconnecting, and each command fails rather than waits.
    await expect(redis.ping()).rejects.toThrow();
    await expect(redisReadiness(redis)()).rejects.toThrow(/not connected/);
  });

  it('a request whose Redis command fails that way answers 503 redis.unavailable with Retry-After, stalled or refused', async () => {
    const stalled = connect();
    await stalled.ping();
    const refused = createRedis(`redis://127.0.0.1:${await freePort()}`, { name: 'fail-fast-test', options: failFastRedisOptions(300) });
    connections.push(refused);
    const app = await createServiceApp({ name: 'redis-down-test', logger: createLogger({ service: 'redis-down-test', level: 'silent' }), auth: false });
    app.get('/stalled', async () => ({ value: await stalled.get('fail-fast:key') }));
    app.get('/refused', async () => ({ value: await refused.get('fail-fast:key') }));
    server.stall();
    for (const url of ['/stalled', '/refused']) {
      const response = await app.inject({ method: 'GET', url });
      expect({ url, status: response.statusCode, code: response.json().error.code, retryAfter: response.headers['retry-after'] }).toEqual({ url, status: 503, code: 'redis.unavailable', retryAfter: '1' });
    }
    await app.close();
    expect(isRedisUnavailable(new Error('ERR wrong number of arguments'))).toBe(false);
  });
});
