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
  limiter: RateLimiterRedis;
  kind: 'address' | 'user' | 'route';
  by: 'address' | 'user';
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
 * budgets) in fixed one-minute windows kept in Redis, so every gateway process shares them. When
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
      limiter: new RateLimiterRedis({
        storeClient: options.redis,
        keyPrefix: `${prefix}:${name}`,
        points,
        duration: windowSeconds,
        rejectIfRedisNotReady: true,
        // Once a key is over its budget this process answers 429 from memory until the window ends.
        inMemoryBlockOnConsumed: points + 1,
      }),
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
