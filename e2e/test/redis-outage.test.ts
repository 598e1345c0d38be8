import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { PrivateRedisServer } from '@civildiy/common/testing';
import { UNLIMITED_GATEWAY, call, registerUser, startSystem, type System } from './system.ts';

/**
 * The broker goes away while users keep ordering and posting through the gateway. The outbox is
 * there so that the API does not depend on the broker: reads of a service's own data and writes that
 * go through the outbox keep answering, reads that need Redis answer 503 with a code, nothing hangs;
 * once Redis is back every order placed is confirmed and charged once and every post reaches the feed.
 *
 * Two outages, on a private `redis-server` (the shared test Redis is left alone):
 * - a crash (SIGKILL) and a restart on the same port and data folder 30 s later: clients see their
 *   connections cut mid-command, then refused, as when a Redis process dies or its host restarts;
 *   the restarted server reloads its append-only file as a production Redis with AOF does
 *   (`appendfsync always`, so the restart loses nothing it acknowledged and what is tested is our
 *   code, not the durability of an `everysec` fsync);
 * - a stall (SIGSTOP, then SIGCONT): the server stops answering but its connections stay open, as
 *   with a frozen or partitioned host. No client notices a disconnection, so only a command
 *   timeout keeps a request from waiting for Redis.
 */

/** A request that has not answered within this long counts as hung (the gateway itself answers 504 after 10 s). */
const HANG_MS = 12_000;
/** Pause between two rounds of one user's requests: a steady trickle of traffic, not a benchmark. */
const ROUND_PAUSE_MS = 800;
const USERS = 3;

type Phase = 'before' | 'outage' | 'after';

/** One request of the load: what it asked, in which phase it ended, how. */
interface Exchange {
  /** The phase when it ended: one in flight as Redis went away counts in the outage. */
  phase: Phase;
  route: string;
  /** The HTTP status, or `hung` (no answer within {@link HANG_MS}) or `error` (the connection failed). */
  status: number | 'hung' | 'error';
  code?: string;
}

interface User {
  id: string;
  token: string;
}

/**
 * A few users, each placing an order, publishing a post and reading the catalog, their orders and
 * the feed, round after round through the gateway, until stopped. Every exchange is recorded with
 * the phase it ended in.
 */
class SteadyLoad {
  phase: Phase = 'before';
  readonly exchanges: Exchange[] = [];
  readonly orders: { orderId: string; user: User }[] = [];
  readonly posts: { postId: string; user: User }[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly gateway: string,
    readonly users: readonly User[],
  ) {
    this.loops = users.map((user) => this.run(user));
  }

  /** Exchanges of `phase` on `route`. */
  of(phase: Phase, route: string): Exchange[] {
    return this.exchanges.filter((exchange) => exchange.phase === phase && exchange.route === route);
  }

  /** The distinct outcomes of `route` in `phase`, as `status` or `status code`. */
  outcomes(phase: Phase, route: string): string[] {
    return [...new Set(this.of(phase, route).map((exchange) => (exchange.code ? `${exchange.status} ${exchange.code}` : String(exchange.status))))].sort();
  }

  /** Stops after the rounds in progress. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async run(user: User): Promise<void> {
    let round = 0;
    while (this.running) {
      round += 1;
      const order = await this.send('POST /orders', user, '/orders', {
        body: { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] },
        headers: { 'idempotency-key': `outage-${newId()}` },
      });
      if (order.status === 201) this.orders.push({ orderId: order.body.id as string, user });
      const post = await this.send('POST /posts', user, '/posts', {
        body: { title: `Garden bench, part ${round}`, body: 'Oak slats on a steel frame.', tags: ['garden'] },
      });
      if (post.status === 201) this.posts.push({ postId: post.body.postId as string, user });
      await Promise.all([this.send('GET /catalog', user, '/catalog'), this.send('GET /orders', user, '/orders'), this.send('GET /feed', user, '/feed')]);
      await delay(ROUND_PAUSE_MS);
    }
  }

  private async send(route: string, user: User, url: string, options: { body?: unknown; headers?: Record<string, string> } = {}) {
    const exchange: Exchange = { phase: this.phase, route, status: 'error' };
    this.exchanges.push(exchange);
    try {
      const response = await fetch(`${this.gateway}${url}`, {
        method: options.body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json', ...options.headers },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(HANG_MS),
      });
      const text = await response.text();
      const body = (text ? JSON.parse(text) : {}) as Record<string, unknown> & { error?: { code?: string } };
      exchange.status = response.status;
      if (body.error?.code) exchange.code = body.error.code;
      return { status: response.status, body };
    } catch (error) {
      exchange.status = error instanceof Error && error.name === 'TimeoutError' ? 'hung' : 'error';
      return { status: 0, body: {} };
    } finally {
      exchange.phase = this.phase;
    }
  }
}

/** `GET url` with the hang detector: the status (or `hung`) and the parsed body. */
async function probe(url: string): Promise<{ status: number | 'hung'; body: Record<string, unknown> }> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(HANG_MS) });
    const text = await response.text();
    return { status: response.status, body: (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, unknown> };
  } catch (error) {
    if (error instanceof Error && error.name === 'TimeoutError') return { status: 'hung', body: {} };
    throw error;
  }
}

let redis: PrivateRedisServer;
let system: System;
let gateway: string;

beforeAll(async () => {
  redis = await PrivateRedisServer.start();
  system = await startSystem({
    services: ['mock-providers', 'auth-service', 'posts-service', 'feed-service', 'order-service', 'worker', 'gateway'],
    env: { ...UNLIMITED_GATEWAY, REDIS_BROKER_URL: redis.url },
  });
  gateway = system.urls.gateway;
}, 180_000);

afterAll(async () => {
  // The system's own cleanup deletes its keys on the shared test Redis (there are none); this test's Redis goes as a whole.
  await system?.stop();
  await redis?.remove();
});

/**
 * Puts load through the gateway, takes Redis away with `begin` for `outageMs` while probing the
 * services, brings it back with `end`, and stops the load after a round of every user that started
 * with Redis back.
 */
async function loadThroughOutage(outage: { begin(): Promise<void> | void; end(): Promise<void> | void; outageMs: number }): Promise<SteadyLoad> {
  const users = await Promise.all(Array.from({ length: USERS }, () => registerUser(gateway)));
  const load = new SteadyLoad(gateway, users);
  try {
    // The flow works before the outage: a first order is confirmed.
    await expect.poll(() => load.orders.length, { timeout: 20_000 }).toBeGreaterThan(0);
    const [first] = load.orders;
    await expect
      .poll(async () => (await call(`${gateway}/orders/${first!.orderId}`, { token: first!.user.token })).body.status, { timeout: 30_000 })
      .toBe('confirmed');

    load.phase = 'outage';
    await outage.begin();
    // Readiness tells at once that Redis is down and the database is up; metrics still answer.
    const readiness = await probe(`${system.urls.orders}/health/ready`);
    expect(readiness.status).toBe(503);
    expect(readiness.body).toMatchObject({ checks: { redis: { status: 'down' }, database: { status: 'up' } } });
    for (const service of ['order-service', 'posts-service'] as const) {
      expect((await probe(system.metricsUrls[service])).status, `${service} GET /metrics`).toBe(200);
    }
    await delay(outage.outageMs);

    await outage.end();
    load.phase = 'after';
    await expect.poll(async () => (await probe(`${system.urls.orders}/health/ready`)).status, { timeout: 20_000 }).toBe(200);
    await expect.poll(() => load.of('after', 'GET /feed').length, { timeout: 30_000 }).toBeGreaterThanOrEqual(USERS);
  } finally {
    await load.stop();
  }
  return load;
}

/** Nothing hung or timed out; the services' own data and the outbox writes answered throughout; the feed answered, 503 at worst. */
function expectAnsweredThroughout(load: SteadyLoad): void {
  const failures = load.exchanges.filter((exchange) => exchange.status === 'hung' || exchange.status === 'error' || exchange.status === 504);
  expect(failures).toEqual([]);
  const expected: Record<string, string> = { 'GET /catalog': '200', 'GET /orders': '200', 'POST /orders': '201', 'POST /posts': '201', 'GET /feed': '200' };
  for (const [route, status] of Object.entries(expected)) {
    expect(load.of('outage', route).length, `${route} during the outage`).toBeGreaterThan(2);
    for (const phase of ['before', 'outage', 'after'] as const) {
      // The feed lives in Redis: while Redis is away (and until feed-service has reconnected) it answers 503 feed.unavailable.
      const allowed = route === 'GET /feed' && phase !== 'before' ? [status, '503 feed.unavailable'] : [status];
      expect(load.outcomes(phase, route).filter((outcome) => !allowed.includes(outcome)), `${route} ${phase}`).toEqual([]);
    }
  }
}

/** Every order placed is confirmed, charged exactly once; every post published is in its author's feed. */
async function expectEverythingDelivered(load: SteadyLoad, chargesBefore: number): Promise<void> {
  const notConfirmed = async () => {
    const statuses = await Promise.all(load.orders.map(async ({ orderId, user }) => (await call(`${gateway}/orders/${orderId}`, { token: user.token })).body.status));
    return statuses.filter((status) => status !== 'confirmed').length;
  };
  await expect.poll(notConfirmed, { timeout: 60_000, interval: 500 }).toBe(0);
  const charges = await Promise.all(load.orders.map(async ({ orderId }) => (await call(`${system.urls.payments}/v1/payments?reference=${orderId}`)).body.items as unknown[]));
  expect(charges.filter((items) => items.length !== 1)).toEqual([]);
  expect((await chargesCreated()) - chargesBefore).toBe(load.orders.length);

  const notInFeed = async () => {
    const shown = new Set<string>();
    for (const user of load.users) {
      const feed = await call(`${gateway}/feed/users/${user.id}?limit=100`);
      for (const item of (feed.body.items ?? []) as { postId: string }[]) shown.add(item.postId);
    }
    return load.posts.filter((post) => !shown.has(post.postId)).length;
  };
  await expect.poll(notInFeed, { timeout: 60_000, interval: 500 }).toBe(0);
}

async function chargesCreated(): Promise<number> {
  return (await call(`${system.urls.payments}/_admin/stats`)).body.chargesCreated as number;
}

describe('Redis outages under steady load, real processes behind the gateway', () => {
  it('when Redis crashes and restarts 30 s later, the API answers throughout; then every order is confirmed once and every post is in the feed', async () => {
    const chargesBefore = await chargesCreated();
    const load = await loadThroughOutage({ begin: () => redis.crash(), end: () => redis.up(), outageMs: 30_000 });
    expectAnsweredThroughout(load);
    await expectEverythingDelivered(load, chargesBefore);
  });

  it('when Redis stops answering for 10 s with its connections open, nothing waits for it; then every order is confirmed once and every post is in the feed', async () => {
    const chargesBefore = await chargesCreated();
    const load = await loadThroughOutage({ begin: () => redis.stall(), end: () => redis.resume(), outageMs: 10_000 });
    expectAnsweredThroughout(load);
    await expectEverythingDelivered(load, chargesBefore);
  });
});
