import type { Redis } from '@civildiy/common/redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/** Options of {@link FailureWindow}. */
export interface FailureWindowOptions {
  redis: Redis;
  /** Counters live at `<keyPrefix>:<key>`. */
  keyPrefix: string;
  maxFailures: number;
  windowSeconds: number;
  /**
   * Once over the limit, stay refused a whole window from then (a device's lock), rather than until
   * the current window ends (an address's budget). Default false.
   */
  lockForWindow?: boolean;
}

/**
 * Failed logins per key (a client address, a device) in a fixed window in Redis. An attempt is
 * counted when it starts, so concurrent attempts cannot slip past the limit together; a success
 * gives it back ({@link giveBack}) or clears the key ({@link clear}).
 */
export class FailureWindow {
  private readonly limiter: RateLimiterRedis;

  constructor(options: FailureWindowOptions) {
    this.limiter = new RateLimiterRedis({
      storeClient: options.redis,
      keyPrefix: options.keyPrefix,
      points: options.maxFailures,
      duration: options.windowSeconds,
      ...(options.lockForWindow ? { blockDuration: options.windowSeconds } : {}),
    });
  }

  /** Counts an attempt for `key`: 0 when it may go on, else milliseconds until it may. Rejects when Redis fails. */
  async take(key: string): Promise<number> {
    try {
      await this.limiter.consume(key);
      return 0;
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return rejection.msBeforeNext;
      throw rejection;
    }
  }

  /** Takes back the attempt counted by {@link take}: it was not a failure. */
  async giveBack(key: string): Promise<void> {
    await this.limiter.reward(key, 1);
  }

  /** Forgets every failure of `key`. */
  async clear(key: string): Promise<void> {
    await this.limiter.delete(key);
  }
}
