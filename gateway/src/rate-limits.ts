import type { Logger } from '@civildiy/common';
import { createRedis, type Redis } from '@civildiy/common/redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { GatewayMetrics } from './gateway-metrics.ts';
import type { CompiledRoute } from './route-table.ts';

/** The gateway's budgets (requests per minute; 0 = unlimited). */
export interface RateLimitSettings {
  perAddressPerMinute: number;
  perUserPerMinute: number;
  /** Multiplies the route table's own budgets; 0 turns them off. */
  routeFactor: number;
}

/** The outcome of counting one request. */
export interface RateLimitVerdict {
  limited: boolean;
  /** Seconds until the exhausted budget refills (when `limited`). */
  retryAfterSeconds: number;
  /** The tightest budget, for the `X-RateLimit-*` headers; absent when nothing was counted. */
  tightest?: { limit: number; remaining: number; resetSeconds: number };
}

interface Budget {
  limiter: LeasedLimiter;
  kind: 'address' | 'user' | 'route';
  by: 'address' | 'user';
}

/** Points a process took from a key's shared budget ahead of use. */
interface Lease {
  /** Points taken and not used yet. */
  left: number;
  /** The shared budget's remaining points right after the lease was taken. */
  remainingAfter: number;
  /** When the window (and so the lease) ends, `Date.now()` time. */
  endsAt: number;
  /** The key is over its budget: answered from memory until `endsAt`, without asking Redis. */
  blocked: boolean;
}

/** Most points leased at once, and how much of a budget one lease may take (1/50). */
const MAX_LEASE = 20;
const LEASE_SHARE = 50;

/**
 * A {@link RateLimiterRedis} budget counted in leases: when a key has plenty of budget left, one
 * Redis call takes several points at once and the next requests of that key in this process use
 * them without a round trip (on public reads the Redis call was a quarter of the gateway's CPU per
 * request). Never lets more than the budget through, since every point is taken from the shared
 * count before it is used; the price is that a client may be limited up to `lease - 1` points per
 * gateway process early, the points leased and not used when the window ends. Budgets under 100
 * points are counted one by one (exact), and so is every key close to its limit. Once a key is over
 * its budget, this process answers 429 for it from memory until the window ends.
 */
export class LeasedLimiter {
  readonly points: number;
  private readonly leaseSize: number;
  private readonly leases = new Map<string, Lease>();
  private readonly taking = new Map<string, Promise<RateLimiterRes>>();
  private sweptAt = 0;

  constructor(private readonly limiter: RateLimiterRedis) {
    this.points = limiter.points;
    this.leaseSize = Math.min(MAX_LEASE, Math.floor(limiter.points / LEASE_SHARE));
  }

  /** Takes one point for `key`: resolves with the budget's state, rejects with it when over the limit, rejects with the store's error otherwise. */
  async consume(key: string): Promise<RateLimiterRes> {
    for (;;) {
      const now = Date.now();
      const lease = this.leases.get(key);
      if (lease !== undefined && now < lease.endsAt) {
        if (lease.blocked) throw new RateLimiterRes(0, lease.endsAt - now, this.points + 1, false);
        if (lease.left > 0) {
          lease.left--;
          return new RateLimiterRes(lease.remainingAfter + lease.left, lease.endsAt - now, this.points - lease.remainingAfter - lease.left, false);
        }
      }
      // One lease request per key at a time: concurrent requests wait for it and share what it took,
      // instead of each taking a lease of its own (left unused when the window ends).
      const inFlight = this.taking.get(key);
      if (inFlight === undefined) break;
      await inFlight.catch(() => undefined);
    }
    const taking = this.take(key);
    if (this.leaseSize > 1) {
      this.taking.set(key, taking);
      void taking.finally(() => this.taking.delete(key)).catch(() => undefined);
    }
    return taking;
  }

  /** One call to Redis: a lease when the key has budget to spare, else a single point. */
  private async take(key: string): Promise<RateLimiterRes> {
    const now = Date.now();
    const lease = this.leases.get(key);
    // Lease only with a margin of several leases, so processes racing for the last points rarely overshoot.
    const known = lease !== undefined && now < lease.endsAt ? lease.remainingAfter : undefined;
    const size = this.leaseSize > 1 && known !== undefined && known >= 4 * this.leaseSize ? this.leaseSize : 1;
    let result: RateLimiterRes;
    try {
      try {
        result = await this.limiter.consume(key, size);
      } catch (rejection) {
        if (size === 1 || !(rejection instanceof RateLimiterRes)) throw rejection;
        // Other processes took the rest meanwhile: give the lease back and count this request alone.
        await this.limiter.reward(key, size);
        result = await this.limiter.consume(key, 1);
      }
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        this.leases.set(key, { left: 0, remainingAfter: 0, endsAt: now + rejection.msBeforeNext, blocked: true });
        this.sweep(now);
      }
      throw rejection;
    }
    if (size > 1 || this.leaseSize > 1) {
      this.leases.set(key, { left: size - 1, remainingAfter: result.remainingPoints, endsAt: now + result.msBeforeNext, blocked: false });
      this.sweep(now);
    }
    return new RateLimiterRes(result.remainingPoints + size - 1, result.msBeforeNext, result.consumedPoints, result.isFirstInDuration);
  }

  /** Drops ended leases now and then, so the map holds only keys seen in the current window. */
  private sweep(now: number): void {
    if (now - this.sweptAt < 10_000) return;
    this.sweptAt = now;
    for (const [key, lease] of this.leases) if (now >= lease.endsAt) this.leases.delete(key);
  }
}

const UNLIMITED: RateLimitVerdict = { limited: false, retryAfterSeconds: 0 };

/**
 * A Redis connection for the rate limits that fails fast: no offline queue (a command while Redis is
 * down fails at once instead of waiting for a reconnect) and a short command timeout, so a Redis
 * outage costs each request at most `commandTimeoutMs` before the gateway lets it through.
 */
export function createRateLimitRedis(url: string, logger: Logger, commandTimeoutMs = 500): Redis {
  return createRedis(url, {
    name: 'gateway-rate-limits',
    logger,
    options: { enableOfflineQueue: false, enableAutoPipelining: true, maxRetriesPerRequest: 0, commandTimeout: commandTimeoutMs },
  });
}

/**
 * Resolves once `redis` is connected, or after `timeoutMs` (the gateway then starts without limits
 * until Redis answers). Without an offline queue, commands sent earlier would fail.
 */
export function connected(redis: Redis, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (redis.status === 'ready') return resolve();
    const timer = setTimeout(resolve, timeoutMs);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Counts requests per client address, per authenticated user and per route (the table's own
 * budgets) in fixed one-minute windows kept in Redis, so every gateway process shares them (large
 * budgets in leases, see {@link LeasedLimiter}). When
 * Redis does not answer, the request passes (fail open): the limits protect the services, and an
 * outage of Redis should not become an outage of the whole API. Each such pass is counted in a
 * metric and logged at warn (at most once every 10 s).
 */
export class RateLimits {
  private readonly global: Budget[] = [];
  private readonly byRoute = new Map<CompiledRoute, Budget[]>();
  private lastWarning = 0;

  constructor(
    private readonly options: {
      redis: Redis;
      /** Keys live under `<keyPrefix>:gateway:rl:`. */
      keyPrefix: string;
      settings: RateLimitSettings;
      routes: readonly CompiledRoute[];
      logger: Logger;
      metrics: GatewayMetrics;
    },
  ) {
    const { settings } = options;
    const prefix = `${options.keyPrefix}:gateway:rl`;
    const budget = (kind: Budget['kind'], by: Budget['by'], name: string, points: number, windowSeconds = 60): Budget => ({
      kind,
      by,
      limiter: new LeasedLimiter(
        new RateLimiterRedis({
          storeClient: options.redis,
          keyPrefix: `${prefix}:${name}`,
          points,
          duration: windowSeconds,
          rejectIfRedisNotReady: true,
        }),
      ),
    });
    if (settings.perAddressPerMinute > 0) this.global.push(budget('address', 'address', 'address', settings.perAddressPerMinute));
    if (settings.perUserPerMinute > 0) this.global.push(budget('user', 'user', 'user', settings.perUserPerMinute));
    if (settings.routeFactor > 0) {
      for (const route of options.routes) {
        const own = route.route.rateLimit;
        if (!own) continue;
        const budgets: Budget[] = [];
        const name = `route:${route.label.replace(/[^A-Za-z0-9,]+/g, '-').replace(/^-|-$/g, '')}`;
        const scaled = (points: number) => Math.max(1, Math.round(points * settings.routeFactor));
        if (own.perAddress) budgets.push(budget('route', 'address', `${name}:address`, scaled(own.perAddress), own.windowSeconds));
        if (own.perUser) budgets.push(budget('route', 'user', `${name}:user`, scaled(own.perUser), own.windowSeconds));
        if (budgets.length > 0) this.byRoute.set(route, budgets);
      }
    }
  }

  /** Counts one request of `address` (and `userId`, when authenticated) on `route`. */
  async consume(route: CompiledRoute, address: string, userId: string | undefined): Promise<RateLimitVerdict> {
    const routeBudgets = this.byRoute.get(route);
    if (this.global.length === 0 && !routeBudgets) return UNLIMITED;
    const budgets = routeBudgets ? [...this.global, ...routeBudgets] : this.global;
    const counted: Promise<RateLimiterRes>[] = [];
    const used: Budget[] = [];
    for (const budget of budgets) {
      const key = budget.by === 'address' ? address : userId;
      if (key === undefined) continue;
      used.push(budget);
      counted.push(budget.limiter.consume(key));
    }
    const outcomes = await Promise.allSettled(counted);

    let limited = false;
    let retryAfterMs = 0;
    let tightest: RateLimitVerdict['tightest'];
    let storeFailure: unknown;
    for (let i = 0; i < outcomes.length; i++) {
      const outcome = outcomes[i]!;
      const budget = used[i]!;
      let result: RateLimiterRes;
      if (outcome.status === 'fulfilled') {
        result = outcome.value;
      } else if (outcome.reason instanceof RateLimiterRes) {
        result = outcome.reason;
        limited = true;
        retryAfterMs = Math.max(retryAfterMs, result.msBeforeNext);
        this.options.metrics.rateLimited.inc({ limit: budget.kind });
      } else {
        storeFailure = outcome.reason;
        continue;
      }
      const limit = budget.limiter.points;
      if (!tightest || result.remainingPoints < tightest.remaining) {
        tightest = { limit, remaining: result.remainingPoints, resetSeconds: Math.max(1, Math.ceil(result.msBeforeNext / 1000)) };
      }
    }
    if (storeFailure !== undefined) this.failedOpen(storeFailure);
    return { limited, retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)), ...(tightest ? { tightest } : {}) };
  }

  private failedOpen(error: unknown): void {
    this.options.metrics.rateLimitFailOpen.inc();
    const now = Date.now();
    if (now - this.lastWarning < 10_000) return;
    this.lastWarning = now;
    this.options.logger.warn(
      { reason: error instanceof Error ? error.message : String(error) },
      'rate limits unavailable (Redis did not answer): requests pass unlimited',
    );
  }
}
