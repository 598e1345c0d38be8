import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@civildiy/common';
import { createTestTokens, freePort, removeRedisPrefix, startServiceProcess, uniquePrefix, type ServiceProcess, type TestTokens } from '@civildiy/common/testing';
import { gatewayEnv } from '../src/config.ts';
import { startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type StubUpstream } from './stub-upstream.ts';

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let tokens: TestTokens;
let posts: StubUpstream;
let gateway: GatewayUnderTest;

beforeAll(async () => {
  tokens = await createTestTokens();
  posts = await startStubUpstream('posts-service');
  gateway = await startGateway({ auth: tokens.keys, urls: { 'posts-service': posts.url } });
});

afterAll(async () => {
  await gateway?.close();
  await posts?.close();
});

describe("the gateway's metrics", () => {
  it('are served on the operations port: proxied requests by route and every upstream timing', async () => {
    expect((await fetch(`${gateway.url}/posts`)).status).toBe(200);
    const response = await fetch(`${gateway.opsUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const metrics = await response.text();
    expect(metrics).toMatch(/civildiy_gateway_requests_total\{[^}]*route="\/posts GET"[^}]*service="posts-service"[^}]*status="200"/);
    expect(metrics).toMatch(/civildiy_gateway_upstream_duration_seconds_bucket\{[^}]*service="posts-service"/);
    expect(metrics).toMatch(/civildiy_http_request_duration_seconds_bucket\{[^}]*route="\/posts"[^}]*status="200"/);
  });

  it('are not on the public port: 404 route_not_found, however /metrics is spelled', async () => {
    for (const target of ['/metrics', '/metrics/', '//metrics', '/%6Detrics', '/%6detrics', '/metrics?format=text', '/METRICS', '/metrics/x']) {
      const response = await fetch(`${gateway.url}${target}`);
      expect({ target, status: response.status, body: await response.json() }).toMatchObject({ target, status: 404, body: { error: { code: 'route_not_found' } } });
    }
    const head = await fetch(`${gateway.url}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(404);
  });
});

describe('the operations port', () => {
  it('answers /health/live, and nothing of the public API', async () => {
    expect(await (await fetch(`${gateway.opsUrl}/health/live`)).json()).toEqual({ status: 'ok' });
    for (const target of ['/posts', '/docs', '/health']) {
      const response = await fetch(`${gateway.opsUrl}${target}`);
      expect({ target, status: response.status, body: await response.json() }).toMatchObject({ target, status: 404, body: { error: { code: 'route_not_found' } } });
    }
  });

  it('must differ from the public port, unless it is 0 (none)', () => {
    expect(() => loadConfig(gatewayEnv, { GATEWAY_PORT: '8000', GATEWAY_OPS_PORT: '8000' })).toThrow(ConfigError);
    expect(() => loadConfig(gatewayEnv, { GATEWAY_PORT: '8000', GATEWAY_OPS_PORT: '8000' })).toThrow(/GATEWAY_OPS_PORT/);
    expect(loadConfig(gatewayEnv, { GATEWAY_PORT: '0', GATEWAY_OPS_PORT: '0' }).GATEWAY_OPS_PORT).toBe(0);
    expect(loadConfig(gatewayEnv, {}).GATEWAY_OPS_PORT).toBe(8009);
  });
});

describe('the gateway process', () => {
  const prefix = uniquePrefix('gateway-ops');
  let process: ServiceProcess | undefined;

  afterAll(async () => {
    await process?.stop();
    await removeRedisPrefix(prefix);
  });

  it('listens on GATEWAY_OPS_PORT for its metrics and keeps them off GATEWAY_PORT', async () => {
    const [port, opsPort] = [await freePort(), await freePort()];
    process = await startServiceProcess({
      root: repositoryRoot,
      workspace: 'gateway',
      name: 'gateway-ops',
      readyUrl: `http://127.0.0.1:${port}/health/ready`,
      env: { GATEWAY_PORT: String(port), GATEWAY_OPS_PORT: String(opsPort), REDIS_KEY_PREFIX: prefix, POSTS_URL: posts.url, LOG_LEVEL: 'warn' },
    });
    expect((await fetch(`http://127.0.0.1:${port}/posts`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text()).toMatch(/civildiy_gateway_requests_total\{[^}]*route="\/posts GET"[^}]*status="200"/);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
  });
});
