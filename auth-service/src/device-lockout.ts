import type { Redis } from '@civildiy/common/redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/** Options of {@link DeviceLockout}. */
export interface DeviceLockoutOptions {
  redis: Redis;
  /** Counters live at `<keyPrefix>:<deviceId>`. */
  keyPrefix: string;
  maxFailures: number;
  /** Failures are counted in this window, and a device over the limit is locked this long. */
  windowSeconds: number;
}

/**
 * Failed logins per device (OWASP device cookies): after `maxFailures` within the window, the
 * device is locked for a window — whoever holds its token. An attempt is counted when it starts, so
 * concurrent attempts cannot slip past the limit together; a success clears the count.
 */
export class DeviceLockout {
  private readonly limiter: RateLimiterRedis;

  constructor(options: DeviceLockoutOptions) {
    this.limiter = new RateLimiterRedis({
      storeClient: options.redis,
      keyPrefix: options.keyPrefix,
      points: options.maxFailures,
      duration: options.windowSeconds,
      blockDuration: options.windowSeconds,
    });
  }

  /** Counts an attempt with `deviceId`: 0 when it may go on, else milliseconds until the lock ends. Rejects when Redis fails. */
  async take(deviceId: string): Promise<number> {
    try {
      await this.limiter.consume(deviceId);
      return 0;
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) return rejection.msBeforeNext;
      throw rejection;
    }
  }

  /** Forgets the device's failures after a successful login. */
  async clear(deviceId: string): Promise<void> {
    await this.limiter.delete(deviceId);
  }
}
