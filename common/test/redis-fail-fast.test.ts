import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logging/index.ts';
import { createRedis, failFastRedisOptions, isRedisUnavailable, redisReadiness, type Redis } from '../src/redis/index.ts';
import { createServiceApp } from '../src/service/index.ts';
import { freePort } from '../src/testing/processes.ts';

/**
 * The connection a service's requests use must not wait for a Redis that is away. These tests need
 * a Redis they can take away, so they run their own `redis-server` (the shared test Redis is left
 * alone): killed, as when Redis crashes, or stopped (SIGSTOP), as when it hangs with its connections
 * open.
 */
class PrivateRedis {
  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {}

  static async start(): Promise<PrivateRedis> {
    const port = await freePort();
    const dir = await mkdtemp(path.join(tmpdir(), 'civildiy-redis-fail-fast-'));
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}):\n${output}`)));
    });
    return new PrivateRedis(port, child, dir);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  stall(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  async remove(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await once(this.child, 'exit');
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

describe('a fail-fast Redis connection (failFastRedisOptions) against a Redis that goes away', () => {
  let server: PrivateRedis;
  const connections: Redis[] = [];

  function connect(): Redis {
    const redis = createRedis(server.url, { name: 'fail-fast-test', options: failFastRedisOptions(300) });
    connections.push(redis);
    return redis;
  }

  beforeAll(async () => {
    server = await PrivateRedis.start();
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
