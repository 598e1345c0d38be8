import type { Redis } from '@civildiy/common/redis';

/** What the dashboard knows of one instance's restarts. */
export interface RestartRecord {
  restarts: number;
  /** ISO time the newest process started, when a restart was seen. */
  lastRestartAt: string | null;
}

/**
 * Compares the process start time with the one stored; a different one is a restart. Atomic, so
 * that several dashboards seeing the same new process count it once.
 * KEYS[1] the hash; ARGV[1] the field, ARGV[2] the start time (seconds), ARGV[3] that time as ISO.
 */
const OBSERVE = `
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then
  local record = cjson.encode({ startTime = ARGV[2], restarts = 0 })
  redis.call('HSET', KEYS[1], ARGV[1], record)
  return record
end
local record = cjson.decode(stored)
if record.startTime ~= ARGV[2] then
  record.startTime = ARGV[2]
  record.restarts = (record.restarts or 0) + 1
  record.lastRestartAt = ARGV[3]
  stored = cjson.encode(record)
  redis.call('HSET', KEYS[1], ARGV[1], stored)
end
return stored`;

/**
 * Counts the restarts of each service instance by its `process_start_time_seconds`, in Redis
 * (`<prefix>:dashboard:restarts`), so a restart of the dashboard keeps the counts.
 */
export class RestartTracker {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.key = `${prefix}:dashboard:restarts`;
  }

  /** Records that `instance` runs a process started at `startTimeSeconds`; resolves with its restarts so far. */
  async observe(instance: string, startTimeSeconds: number): Promise<RestartRecord> {
    const startedAt = new Date(startTimeSeconds * 1000).toISOString();
    const stored = (await this.redis.eval(OBSERVE, 1, this.key, instance, String(startTimeSeconds), startedAt)) as string;
    const record = JSON.parse(stored) as { restarts?: number; lastRestartAt?: string };
    return { restarts: record.restarts ?? 0, lastRestartAt: record.lastRestartAt ?? null };
  }

  /** What is stored for `instance`, without a new observation (a service not answering). */
  async known(instance: string): Promise<RestartRecord> {
    const stored = await this.redis.hget(this.key, instance);
    if (stored === null) return { restarts: 0, lastRestartAt: null };
    const record = JSON.parse(stored) as { restarts?: number; lastRestartAt?: string };
    return { restarts: record.restarts ?? 0, lastRestartAt: record.lastRestartAt ?? null };
  }
}
