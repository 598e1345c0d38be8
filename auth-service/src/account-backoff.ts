import type { Redis } from '@civildiy/common/redis';

/** Options of {@link AccountBackoff}. */
export interface AccountBackoffOptions {
  redis: Redis;
  /** State lives at `<keyPrefix>:<login>`. */
  keyPrefix: string;
  /** Failures before any wait. */
  freeFailures: number;
  /** The wait after the last free failure; it doubles with every further failure. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** The failures are forgotten this long after the last wait ended without a new attempt. */
  memoryMs: number;
}

// One script, so that checking the wait and counting the attempt are one step for concurrent
// attempts in every process. The key is a hash: `failures`, and `until` (Redis time, ms) while a
// wait is on. Redis' own clock, so processes with skewed clocks agree.
const TAKE_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local waitUntil = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if waitUntil > now then return waitUntil - now end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local free = tonumber(ARGV[1])
local delay = 0
if failures >= free then
  delay = math.min(tonumber(ARGV[2]) * 2 ^ (failures - free), tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'until', string.format('%.0f', now + delay))
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', delay + tonumber(ARGV[4])))
return 0
`;

/**
 * Failed logins per account from clients without a device token, answered with an exponentially
 * growing wait instead of a lock: after `freeFailures`, the next attempt must wait `firstDelayMs`,
 * then twice as long after each further failure, up to `maxDelayMs`. A guesser is slowed to one
 * try per `maxDelayMs`, while the owner is at most that long from a try. An attempt is counted when
 * it starts, so concurrent attempts cannot share one slot; a success clears the count.
 */
export class AccountBackoff {
  constructor(private readonly options: AccountBackoffOptions) {}

  /** Counts an attempt on `account`: 0 when it may go on, else milliseconds to wait. Rejects when Redis fails. */
  async take(account: string): Promise<number> {
    const { freeFailures, firstDelayMs, maxDelayMs, memoryMs } = this.options;
    const wait = await this.options.redis.eval(TAKE_SCRIPT, 1, this.key(account), freeFailures, firstDelayMs, maxDelayMs, memoryMs);
    return Number(wait);
  }

  /** Forgets the account's failures after a successful login. */
  async clear(account: string): Promise<void> {
    await this.options.redis.del(this.key(account));
  }

  private key(account: string): string {
    return `${this.options.keyPrefix}:${account}`;
  }
}
