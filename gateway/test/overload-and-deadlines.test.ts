import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestTokens, type TestTokens } from '@civildiy/common/testing';
import { startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type Echo, type StubUpstream } from './stub-upstream.ts';

let tokens: TestTokens;
let feed: StubUpstream;
let posts: StubUpstream;
let gateway: GatewayUnderTest;

beforeAll(async () => {
  tokens = await createTestTokens();
  [feed, posts] = await Promise.all([startStubUpstream('feed-service', { slowMs: 2_000 }), startStubUpstream('posts-service')]);
  gateway = await startGateway({
    auth: tokens.keys,
    urls: { 'feed-service': feed.url, 'posts-service': posts.url },
    env: { GATEWAY_UPSTREAM_CONNECTIONS: '1', GATEWAY_UPSTREAM_QUEUE_MS: '100', GATEWAY_UPSTREAM_MAX_QUEUED: '1', GATEWAY_UPSTREAM_TIMEOUT_MS: '5000' },
  });
});

afterAll(async () => {
  await gateway?.close();
  await Promise.all([feed?.close(), posts?.close()]);
});

describe('overload at the gateway', () => {
  it('refuses with 503 service.overloaded and Retry-After a request whose upstream has no free connection in time, and serves the next once it frees', async () => {
    const slow = fetch(`${gateway.url}/feed/slow`);
    await expect.poll(() => feed.received.includes('/feed/slow')).toBe(true);

    const waited = await fetch(`${gateway.url}/feed/1`);
    expect(waited.status).toBe(503);
    expect(waited.headers.get('retry-after')).toBe('1');
    expect(await waited.json()).toEqual({ error: { code: 'service.overloaded', message: expect.any(String), details: { reason: 'queue_timeout' } } });
    // The refused request never reached the service.
    expect(feed.received).not.toContain('/feed/1');

    expect((await slow).status).toBe(200);
    expect((await fetch(`${gateway.url}/feed/2`)).status).toBe(200);
  });

  it('refuses at once when the queue for that upstream is full, while other upstreams are served', async () => {
    const slow = fetch(`${gateway.url}/feed/slow`);
    await expect.poll(() => feed.received.filter((url) => url === '/feed/slow').length).toBe(2);
    const queued = fetch(`${gateway.url}/feed/queued`);
    const full = await fetch(`${gateway.url}/feed/full`);
    expect(full.status).toBe(503);
    expect(((await full.json()) as { error: { details: { reason: string } } }).error.details.reason).toBe('queue_full');
    // One saturated service does not take the slots of another.
    expect((await fetch(`${gateway.url}/posts/free`)).status).toBe(200);
    expect((await queued).status).toBe(503);
    await slow;
  });
});

describe('deadlines passed upstream', () => {
  const echoOf = async (headers: Record<string, string> = {}) => (await (await fetch(`${gateway.url}/posts/echo`, { headers })).json()) as Echo;

  it('tells the service how long the gateway will still wait, less a margin for the way back', async () => {
    const budget = Number((await echoOf()).headers['x-request-timeout-ms']);
    expect(budget).toBeGreaterThan(2_000);
    expect(budget).toBeLessThanOrEqual(4_900);
  });

  it('honours a shorter budget from the client, and caps a longer one at its own timeout', async () => {
    const shorter = Number((await echoOf({ 'x-request-timeout-ms': '1000' })).headers['x-request-timeout-ms']);
    expect(shorter).toBeLessThanOrEqual(900);
    const longer = Number((await echoOf({ 'x-request-timeout-ms': '99999999' })).headers['x-request-timeout-ms']);
    expect(longer).toBeLessThanOrEqual(4_900);
  });
});
