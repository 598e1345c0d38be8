import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import {
  createTestTokens,
  freePort,
  removeRedisPrefix,
  startServiceProcess,
  uniquePrefix,
  type ServiceProcess,
  type TestTokens,
} from '@civildiy/common/testing';
import { startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type Echo, type StubUpstream } from './stub-upstream.ts';

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let tokens: TestTokens;
let feed: StubUpstream;
let auth: StubUpstream;
const gateways: GatewayUnderTest[] = [];

beforeAll(async () => {
  tokens = await createTestTokens();
  [feed, auth] = await Promise.all([startStubUpstream('feed-service'), startStubUpstream('auth-service')]);
});

afterAll(async () => {
  await Promise.all(gateways.map((gateway) => gateway.close()));
  await Promise.all([feed?.close(), auth?.close()]);
});

async function gatewayWith(env: Record<string, string>, redisUrl?: string): Promise<GatewayUnderTest> {
  const gateway = await startGateway({
    auth: tokens.keys,
    urls: { 'feed-service': feed.url, 'auth-service': auth.url },
    env,
    ...(redisUrl ? { redisUrl } : {}),
  });
  gateways.push(gateway);
  return gateway;
}

describe('rate limits in one gateway', () => {
  it('gives each user their own budget: the fourth request of a user with 3 per minute gets 429 gateway.rate_limited with Retry-After', async () => {
    const gateway = await gatewayWith({ GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '3' });
    const alice = { authorization: `Bearer ${await tokens.token(newId())}` };
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${gateway.url}/feed`, { headers: alice });
      expect(response.status).toBe(200);
      remaining.push(response.headers.get('x-ratelimit-remaining'));
      expect(response.headers.get('x-ratelimit-limit')).toBe('3');
    }
    expect(remaining).toEqual(['2', '1', '0']);

    const limited = await fetch(`${gateway.url}/feed`, { headers: alice });
    expect(limited.status).toBe(429);
    expect(await limited.json()).toMatchObject({ error: { code: 'gateway.rate_limited' } });
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);

    const bob = await fetch(`${gateway.url}/feed`, { headers: { authorization: `Bearer ${await tokens.token(newId())}` } });
    expect(bob.status).toBe(200);
    const anonymous = await fetch(`${gateway.url}/feed`);
    expect(anonymous.status).toBe(200);
  });

  it('applies the route table\'s tighter budget on /auth/login without touching other auth routes', async () => {
    // /auth/login allows 20 per address per minute; a factor of 0.1 makes that 2.
    const gateway = await gatewayWith({ GATEWAY_RATE_LIMIT_ROUTE_FACTOR: '0.1' });
    const login = () => fetch(`${gateway.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect((await login()).status).toBe(200);
    expect((await login()).status).toBe(200);
    const limited = await login();
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBeTruthy();
    expect((await fetch(`${gateway.url}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(200);
  });

  it('counts requests with bad tokens against the address budget, so a token-guessing loop runs into 429', async () => {
    const gateway = await gatewayWith({ GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '2' });
    const guess = () => fetch(`${gateway.url}/feed`, { headers: { authorization: 'Bearer not.a.token' } });
    expect((await guess()).status).toBe(401);
    expect((await guess()).status).toBe(401);
    expect((await guess()).status).toBe(429);
  });

  it('keys the address budget on the client a trusted proxy names in X-Forwarded-For, and passes the chain on', async () => {
    const gateway = await gatewayWith({ GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '1', GATEWAY_TRUSTED_PROXIES: '127.0.0.1' });
    const from = (client: string) => fetch(`${gateway.url}/feed`, { headers: { 'x-forwarded-for': client, 'x-forwarded-proto': 'https' } });
    const first = await from('203.0.113.7');
    expect(first.status).toBe(200);
    expect(((await first.json()) as Echo).headers).toMatchObject({ 'x-forwarded-for': '203.0.113.7, 127.0.0.1', 'x-forwarded-proto': 'https' });
    expect((await from('203.0.113.7')).status).toBe(429);
    expect((await from('198.51.100.4')).status).toBe(200);
  });

  it('lets requests through unlimited (fail open) when Redis does not answer, and counts that in a metric', async () => {
    const gateway = await gatewayWith({ GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '1' }, `redis://127.0.0.1:${await freePort()}`);
    const failOpen = async () => {
      const metrics = await (await fetch(`${gateway.opsUrl}/metrics`)).text();
      return Number(/^civildiy_gateway_rate_limit_fail_open_total(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0);
    };
    const before = await failOpen();
    for (let i = 0; i < 3; i++) expect((await fetch(`${gateway.url}/feed`)).status).toBe(200);
    expect(await failOpen()).toBeGreaterThanOrEqual(before + 3);

    const health = await fetch(`${gateway.url}/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ gateway: { status: 'down', checks: { redis: { status: 'down' } } } });
  });
});

describe('rate limits shared by two gateway processes', () => {
  const prefix = uniquePrefix('gateway-shared');
  const processes: ServiceProcess[] = [];

  afterAll(async () => {
    await Promise.all(processes.map((process) => process.stop()));
    await removeRedisPrefix(prefix);
  });

  it('answers 429 once the requests split across both processes reach the per-address budget', async () => {
    const ports = [await freePort(), await freePort()];
    const started = await Promise.all(
      ports.map((port, i) =>
        startServiceProcess({
          root: repositoryRoot,
          workspace: 'gateway',
          name: `gateway-${i + 1}`,
          readyUrl: `http://127.0.0.1:${port}/health/ready`,
          env: {
            GATEWAY_PORT: String(port),
            GATEWAY_OPS_PORT: '0',
            REDIS_KEY_PREFIX: prefix,
            GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '6',
            FEED_URL: feed.url,
            AUTH_JWKS_URL: `${auth.url}/.well-known/jwks.json`,
            LOG_LEVEL: 'warn',
          },
        }),
      ),
    );
    processes.push(...started);

    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`http://127.0.0.1:${ports[i % 2]}/feed`);
      statuses.push(response.status);
      if (response.status === 429) expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      await response.body?.cancel();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
  });
});
