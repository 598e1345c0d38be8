import { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { LeasedLimiter } from '../src/rate-limits.ts';

/** rate-limiter-flexible's Redis limiter, counting the calls that reach Redis. */
class CountingLimiter extends RateLimiterRedis {
  calls = 0;
  override consume(key: string | number, points?: number, options?: Record<string, unknown>): Promise<RateLimiterRes> {
    this.calls++;
    return super.consume(key, points, options);
  }
}

let redis: Redis;
const prefix = uniquePrefix('leased-limits');

beforeAll(() => {
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  await removeRedisPrefix(prefix);
  redis.disconnect();
});

/** Two "gateway processes": two leased limiters over one shared budget. */
function twoProcesses(points: number, name: string) {
  const make = () => new CountingLimiter({ storeClient: redis, keyPrefix: `${prefix}:${name}`, points, duration: 60 });
  const stores = [make(), make()];
  return { stores, limiters: stores.map((store) => new LeasedLimiter(store)) };
}

/** Sends `count` requests of `key` alternately through the limiters, `parallel` at a time; counts allowed and limited. */
async function burst(limiters: LeasedLimiter[], key: string, count: number, parallel = 8) {
  let allowed = 0;
  let limited = 0;
  for (let sent = 0; sent < count; sent += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - sent) }, (_, index) => limiters[(sent + index) % limiters.length]!.consume(key));
    for (const outcome of await Promise.allSettled(batch)) {
      if (outcome.status === 'fulfilled') allowed++;
      else if (outcome.reason instanceof RateLimiterRes) limited++;
      else throw outcome.reason;
    }
  }
  return { allowed, limited };
}

describe('large budgets counted in leases', () => {
  it('never lets more than the shared budget through two processes, limits at most a lease early per process, and asks Redis far less often', async () => {
    const { stores, limiters } = twoProcesses(1_000, 'large');
    const { allowed, limited } = await burst(limiters, 'client-a', 1_200);
    expect(allowed).toBeLessThanOrEqual(1_000);
    // Lease size for 1,000 points is 20: at most 19 leased-and-unused points per process.
    expect(allowed).toBeGreaterThanOrEqual(1_000 - 2 * 19);
    expect(limited).toBe(1_200 - allowed);
    const calls = stores[0]!.calls + stores[1]!.calls;
    expect(calls).toBeLessThan(allowed / 4);
  });

  it('reports the remaining budget and the reset time on every request, leased or not', async () => {
    const { limiters } = twoProcesses(500, 'headers');
    const remaining: number[] = [];
    for (let i = 0; i < 30; i++) {
      const result = await limiters[0]!.consume('client-b');
      remaining.push(result.remainingPoints);
      expect(result.msBeforeNext).toBeGreaterThan(0);
      expect(result.msBeforeNext).toBeLessThanOrEqual(60_000);
    }
    // One process alone: exactly one point per request, whether from Redis or from its lease.
    expect(remaining).toEqual(Array.from({ length: 30 }, (_, i) => 500 - 1 - i));
  });

  it('counts budgets under 100 points one by one, exactly, across two processes', async () => {
    const { stores, limiters } = twoProcesses(10, 'small');
    const { allowed, limited } = await burst(limiters, 'client-c', 16, 4);
    expect(allowed).toBe(10);
    expect(limited).toBe(6);
    expect(stores[0]!.calls + stores[1]!.calls).toBeGreaterThanOrEqual(10);
  });

  it('answers a key that is over its budget from memory until the window ends', async () => {
    const { stores, limiters } = twoProcesses(3, 'blocked');
    const [one] = limiters;
    await burst([one!], 'client-d', 4, 1);
    const callsWhenBlocked = stores[0]!.calls;
    const again = await burst([one!], 'client-d', 20, 5);
    expect(again).toEqual({ allowed: 0, limited: 20 });
    expect(stores[0]!.calls).toBe(callsWhenBlocked);
  });
});
