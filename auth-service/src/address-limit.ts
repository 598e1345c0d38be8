import type { Redis } from '@civildiy/common/redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/** Options of {@link AddressLimit}. */
export interface AddressLimitOptions {
  redis: Redis;
  /** Counters live at `<keyPrefix>:<address>`. */
  keyPrefix: string;
  maxFailures: number;
  windowSeconds: number;
}

/**
 * Failed logins per client address in a fixed window. An attempt is counted when it starts (so
 * concurrent attempts cannot slip past the limit together) and given back when it succeeds or is
 * turned away unchecked.
 */
export class AddressLimit {
  private readonly limiter: RateLimiterRedis;

  constructor(options: AddressLimitOptions) {
    this.limiter = new RateLimiterRedis({
      storeClient: options.redis,
      keyPrefix: options.keyPrefix,
      points: options.maxFailures,
      duration: options.windowSeconds,
    });
  }

  /** Counts an attempt from `address`: 0 when it may go on, else milliseconds until the window ends. Rejects when Redis fails. */
  async take(address: string): Promise<number> {
    try {
      await this.limiter.consume(address);
      return 0;
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return rejection.msBeforeNext;
      throw rejection;
    }
  }

  /** Takes back the attempt counted by {@link take}: it was not a failure. */
  async giveBack(address: string): Promise<void> {
    await this.limiter.reward(address, 1);
  }
}
