/**
 * The gateway process with DISCOVERY=consul, against the fake Consul: it routes to the instances
 * whose checks pass, stops routing to one whose check turned critical, and registers itself (its
 * public port only) until SIGTERM, and publishes the route table to KV for Traefik.
 */
import { hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsulClient } from '@civildiy/common/discovery';
import { FakeConsul, freePort, removeRedisPrefix, startServiceProcess, uniquePrefix, type ServiceProcess } from '@civildiy/common/testing';
import { GATEWAY_ROUTES, SERVICES, composeUpstreamUrls, traefikDynamicConfig, traefikKvEntries, traefikRouterName, traefikRule } from '@civildiy/common/topology';
import { startStubUpstream, type Echo, type StubUpstream } from './stub-upstream.ts';

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('the gateway with DISCOVERY=consul (fake Consul)', () => {
  const prefix = uniquePrefix('gateway-consul');
  let consul: FakeConsul;
  let a: StubUpstream;
  let b: StubUpstream;
  let gateway: ServiceProcess;
  let port: number;
  let opsPort: number;

  /** Which feed-service instance answered each of `count` requests through the gateway. */
  const answeredBy = async (count: number): Promise<string[]> => {
    const answers: string[] = [];
    for (let i = 0; i < count; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/feed`);
      answers.push(response.ok ? ((await response.json()) as Echo).service : `status ${response.status}`);
    }
    return answers;
  };

  beforeAll(async () => {
    [consul, a, b, port, opsPort] = await Promise.all([FakeConsul.start(), startStubUpstream('feed-a'), startStubUpstream('feed-b'), freePort(), freePort()]);
    const client = new ConsulClient({ address: consul.url });
    for (const [id, stub] of [['feed-a', a], ['feed-b', b]] as const) {
      const stubPort = Number(new URL(stub.url).port);
      await client.registerService({ ID: id, Name: 'feed-service', Address: '127.0.0.1', Port: stubPort, Check: { HTTP: `${stub.url}/health/ready`, Interval: '100ms' } });
    }
    gateway = await startServiceProcess({
      root: repositoryRoot,
      workspace: 'gateway',
      name: 'gateway-consul',
      readyUrl: `http://127.0.0.1:${port}/health/ready`,
      env: {
        DISCOVERY: 'consul',
        CONSUL_HTTP_ADDR: consul.url,
        SERVICE_ADDRESS: '127.0.0.1',
        CONSUL_CHECK_INTERVAL_MS: '200',
        GATEWAY_PORT: String(port),
        GATEWAY_OPS_PORT: String(opsPort),
        REDIS_KEY_PREFIX: prefix,
        GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '0',
        GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '0',
        LOG_LEVEL: 'warn',
      },
    });
  });
  afterAll(async () => {
    await gateway?.stop('SIGKILL');
    await Promise.all([consul?.close(), a?.close(), b?.close()]);
    await removeRedisPrefix(prefix);
  });

  it('routes to the instances whose checks pass, over all of them', async () => {
    await expect.poll(async () => new Set(await answeredBy(4)), { timeout: 10_000 }).toEqual(new Set(['feed-a', 'feed-b']));
  });

  it('stops routing to an instance once its check turned critical', async () => {
    await expect.poll(async () => new Set(await answeredBy(4)), { timeout: 10_000 }).toEqual(new Set(['feed-a', 'feed-b']));
    b.setReady(false);
    await expect.poll(() => consul.services('feed-service').find((service) => service.id === 'feed-b')?.status, { timeout: 10_000 }).toBe('critical');

    await expect.poll(async () => new Set(await answeredBy(4)), { timeout: 10_000 }).toEqual(new Set(['feed-a']));
    expect(new Set(await answeredBy(10))).toEqual(new Set(['feed-a']));
  });

  it("publishes the route table to Consul's KV store in Traefik's layout, a router for every route", async () => {
    const expected = traefikKvEntries(traefikDynamicConfig({ upstreamUrl: composeUpstreamUrls(SERVICES) }));
    await expect.poll(() => consul.kv(), { timeout: 10_000 }).toEqual(expected);
    for (const route of GATEWAY_ROUTES) expect(consul.kv()[`traefik/http/routers/${traefikRouterName(route)}/rule`]).toBe(traefikRule(route));
  });

  it('registers its public port (not its operations port) and deregisters on SIGTERM', async () => {
    await expect.poll(() => consul.services('gateway').map((service) => service.port), { timeout: 10_000 }).toEqual([port]);
    expect(consul.services('gateway')[0]!.id).toBe(`gateway-${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-${port}`);

    expect(await gateway.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(consul.services('gateway')).toEqual([]);
  });
});
