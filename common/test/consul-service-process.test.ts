/**
 * A real service process (feed-service, through runService) with DISCOVERY=consul against the fake
 * Consul: it registers once listening, the fake's check of its /health/ready follows its readiness,
 * it deregisters on SIGTERM before its HTTP server closes, and it starts even while Consul is away.
 */
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeConsul } from '../src/testing/consul-fake.ts';
import { repositoryRoot } from '../src/testing/mock-providers.ts';
import { freePort, startServiceProcess, type ServiceProcess } from '../src/testing/processes.ts';
import { PrivateRedisServer } from '../src/testing/redis-server.ts';
import { REDIS_URL, removeRedisPrefix, uniquePrefix } from '../src/testing/redis.ts';

const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '-');

/** feed-service's environment for Consul discovery, checked every 200 ms. */
const consulEnv = (consul: FakeConsul, port: number, redisUrl: string, prefix: string) => ({
  DISCOVERY: 'consul',
  CONSUL_HTTP_ADDR: consul.url,
  CONSUL_HTTP_TOKEN: 'feed-token',
  SERVICE_ADDRESS: '127.0.0.1',
  CONSUL_CHECK_INTERVAL_MS: '200',
  FEED_PORT: String(port),
  REDIS_BROKER_URL: redisUrl,
  REDIS_KEY_PREFIX: prefix,
});

describe('a service process with DISCOVERY=consul (feed-service, fake Consul)', () => {
  const prefix = uniquePrefix('consul-feed');
  let consul: FakeConsul;
  let redis: PrivateRedisServer;
  let feed: ServiceProcess;
  let port: number;

  beforeAll(async () => {
    [consul, redis, port] = await Promise.all([FakeConsul.start({ token: 'feed-token' }), PrivateRedisServer.start(), freePort()]);
    feed = await startServiceProcess({ root: repositoryRoot, workspace: 'feed-service', readyUrl: `http://127.0.0.1:${port}/health/ready`, env: consulEnv(consul, port, redis.url, prefix) });
  });
  afterAll(async () => {
    await feed?.stop('SIGKILL');
    await consul?.close();
    await redis?.remove();
  });

  it('registers itself once listening, as <name>-<host>-<port> at SERVICE_ADDRESS, with its tags and a check of /health/ready that passes', async () => {
    await expect.poll(() => consul.services('feed-service').length, { timeout: 10_000 }).toBe(1);
    const [registered] = consul.services('feed-service');
    expect(registered).toMatchObject({
      id: `feed-service-${host}-${port}`,
      address: '127.0.0.1',
      port,
      meta: { version: '0.1.0' },
      checkDefinition: { HTTP: `http://127.0.0.1:${port}/health/ready`, Interval: '200ms', DeregisterCriticalServiceAfter: '1m' },
    });
    expect(registered!.tags).toEqual(['civildiy', 'version=0.1.0', 'route=/feed/rebuild', 'route=/feed']);
    await expect.poll(() => consul.services('feed-service')[0]?.status, { timeout: 10_000 }).toBe('passing');
  });

  it('fails its check while its readiness fails (its Redis is down), and passes it again once Redis is back', async () => {
    await expect.poll(() => consul.services('feed-service')[0]?.status, { timeout: 10_000 }).toBe('passing');
    await redis.crash();
    await expect.poll(() => consul.services('feed-service')[0]?.status, { timeout: 10_000 }).toBe('critical');
    expect(consul.services('feed-service')[0]!.output).toContain('503');

    await redis.up();
    await expect.poll(() => consul.services('feed-service')[0]?.status, { timeout: 15_000 }).toBe('passing');
  });

  it('deregisters on SIGTERM while its HTTP server still answers, then exits 0', async () => {
    const answeredDuringDeregistration: (number | string)[] = [];
    consul.intercept(async (call) => {
      if (!call.path.startsWith('/v1/agent/service/deregister/')) return;
      const status = await fetch(`http://127.0.0.1:${port}/health/live`).then(
        (response) => response.status,
        () => 'refused',
      );
      answeredDuringDeregistration.push(status);
    });

    expect(await feed.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(consul.callsTo('PUT', '/v1/agent/service/deregister/').map((call) => call.path)).toEqual([`/v1/agent/service/deregister/feed-service-${host}-${port}`]);
    expect(answeredDuringDeregistration).toEqual([200]);
    expect(consul.services('feed-service')).toEqual([]);
    expect(consul.calls.every((call) => call.token === 'feed-token')).toBe(true);
  });
});

describe('a service process with DISCOVERY=consul while Consul is unreachable (fake Consul)', () => {
  const prefix = uniquePrefix('consul-feed-late');
  let consul: FakeConsul;
  let feed: ServiceProcess | undefined;

  afterAll(async () => {
    await feed?.stop('SIGKILL');
    await consul?.close();
    await removeRedisPrefix(prefix);
  });

  it('starts and serves anyway, says so in its log, and registers once Consul answers', async () => {
    consul = await FakeConsul.start();
    await consul.stop();
    const port = await freePort();
    feed = await startServiceProcess({ root: repositoryRoot, workspace: 'feed-service', readyUrl: `http://127.0.0.1:${port}/health/ready`, env: consulEnv(consul, port, REDIS_URL, prefix) });
    expect((await fetch(`http://127.0.0.1:${port}/feed`)).status).toBe(200);
    await expect.poll(() => feed!.output(), { timeout: 10_000 }).toContain('consul: cannot register (the service runs on; it is not discoverable until then)');

    await consul.resume();
    await expect.poll(() => consul.services('feed-service').map((service) => service.id), { timeout: 15_000 }).toEqual([`feed-service-${host}-${port}`]);
    await expect.poll(() => feed!.output(), { timeout: 5_000 }).toMatch(/consul: registered feed-service after \d+ failed attempt\(s\)/);
  });
});
