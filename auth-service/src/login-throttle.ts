import { ServiceUnavailableError, TooManyRequestsError } from '@civildiy/common';
import type { Redis } from '@civildiy/common/redis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/** Options of {@link LoginThrottle}. */
export interface LoginThrottleOptions {
  redis: Redis;
  /** Redis key prefix; the counters live under `<prefix>:account:*` and `<prefix>:address:*`. */
  keyPrefix: string;
  maxFailuresPerAccount: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
}

/** Who is trying to log in: the login name as typed (case-insensitive) and the client address. */
export interface LoginAttempt {
  login: string;
  address: string;
}

/**
 * Counts failed logins per account (the lower-cased login, whether or not it exists, so the answer
 * does not reveal accounts) and per client address, each in a fixed window in Redis. Once either
 * count reaches its maximum, further attempts get 429 with `Retry-After` until the window ends,
 * without checking the password. A successful login clears the account's count, not the address's.
 */
export class LoginThrottle {
  private readonly perAccount: RateLimiterRedis;
  private readonly perAddress: RateLimiterRedis;

  constructor(options: LoginThrottleOptions) {
    const common = { storeClient: options.redis, duration: options.windowSeconds };
    this.perAccount = new RateLimiterRedis({ ...common, keyPrefix: `${options.keyPrefix}:account`, points: options.maxFailuresPerAccount });
    this.perAddress = new RateLimiterRedis({ ...common, keyPrefix: `${options.keyPrefix}:address`, points: options.maxFailuresPerAddress });
  }

  /** Throws 429 `auth.too_many_attempts` when the account or the address has used up its failures. */
  async assertAllowed(attempt: LoginAttempt): Promise<void> {
    const [account, address] = await this.guard(() =>
      Promise.all([this.perAccount.get(accountKey(attempt)), this.perAddress.get(attempt.address)]),
    );
    const waits = [
      account && account.consumedPoints >= this.perAccount.points ? account.msBeforeNext : 0,
      address && address.consumedPoints >= this.perAddress.points ? address.msBeforeNext : 0,
    ];
    const waitMs = Math.max(...waits);
    if (waitMs > 0) throw tooManyAttempts(waitMs);
  }

  /** Counts a failed attempt. Throws 429 when this failure went over a limit (concurrent attempts). */
  async recordFailure(attempt: LoginAttempt): Promise<void> {
    const outcomes = await this.guard(() =>
      Promise.allSettled([this.perAccount.consume(accountKey(attempt)), this.perAddress.consume(attempt.address)]),
    );
    let waitMs = 0;
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') continue;
      if (!(outcome.reason instanceof RateLimiterRes)) throw unavailable(outcome.reason);
      waitMs = Math.max(waitMs, outcome.reason.msBeforeNext);
    }
    if (waitMs > 0) throw tooManyAttempts(waitMs);
  }

  /** Clears the account's failures after a successful login. */
  async recordSuccess(attempt: LoginAttempt): Promise<void> {
    await this.guard(() => this.perAccount.delete(accountKey(attempt)));
  }

  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw unavailable(error);
    }
  }
}

const accountKey = (attempt: LoginAttempt) => attempt.login.trim().toLowerCase();

function tooManyAttempts(waitMs: number): TooManyRequestsError {
  return new TooManyRequestsError(waitMs / 1000, 'Too many failed login attempts; try again later', 'auth.too_many_attempts');
}

// Fail closed: without the counters, brute force would be unlimited.
function unavailable(cause: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError('Login is temporarily unavailable', 'auth.throttle_unavailable', { cause });
}
