import type { Redis } from '@civildiy/common/redis';
import { SERIES, type History, type HistoryPoint, type SeriesName } from './contract.ts';

/** How much history is kept: the charts' hour. */
export const HISTORY_KEEP_SECONDS = 60 * 60;

/**
 * The charts' points in Redis, so a restart of the dashboard does not blank them: one sorted set per
 * series (`<prefix>:dashboard:history:<series>`, score = the point's time in Unix seconds, member
 * `<time>:<value>`; `<prefix>:dashboard:history:times` holds every slot collected), trimmed to the last
 * hour on every write. With several dashboards, the first to
 * claim a time slot (`SET NX`) writes its point; the others leave it.
 */
export class HistoryStore {
  private readonly base: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    /** Seconds between two points. */
    readonly stepSeconds: number,
  ) {
    this.base = `${prefix}:dashboard:history`;
  }

  /** Writes `point` unless another dashboard already wrote this time slot; resolves whether it wrote. */
  async append(point: HistoryPoint): Promise<boolean> {
    const claimed = await this.redis.set(`${this.base}:slot:${point.time}`, '1', 'EX', this.stepSeconds * 2 + 60, 'NX');
    if (claimed === null) return false;
    const transaction = this.redis.multi();
    // The slots collected, with or without values: a slot missing here is a time the dashboard was down.
    transaction.zadd(this.key('times'), point.time, String(point.time));
    transaction.zremrangebyscore(this.key('times'), '-inf', `(${point.time - HISTORY_KEEP_SECONDS}`);
    for (const series of SERIES) {
      const value = point.values[series];
      if (value !== null && value !== undefined) transaction.zadd(this.key(series), point.time, `${point.time}:${value}`);
      transaction.zremrangebyscore(this.key(series), '-inf', `(${point.time - HISTORY_KEEP_SECONDS}`);
    }
    await transaction.exec();
    return true;
  }

  /**
   * The points of the last `minutes`, on a grid of `stepSeconds` from the oldest stored point to the
   * newest slot; a slot with no value (the dashboard was down, a metric was missing) is null.
   */
  async read(minutes: number, now = Date.now()): Promise<History> {
    const end = Math.floor(now / 1000 / this.stepSeconds) * this.stepSeconds;
    const from = end - minutes * 60;
    const pipeline = this.redis.pipeline();
    for (const series of SERIES) pipeline.zrangebyscore(this.key(series), `(${from}`, '+inf');
    pipeline.zrangebyscore(this.key('times'), `(${from}`, '+inf', 'LIMIT', 0, 1);
    const replies = (await pipeline.exec()) ?? [];
    const [timesError, firstSlot] = replies[SERIES.length] ?? [null, []];
    if (timesError) throw timesError;
    const stored = new Map<SeriesName, Map<number, number>>();
    let oldest = Infinity;
    SERIES.forEach((series, index) => {
      const [error, members] = replies[index] ?? [null, []];
      if (error) throw error;
      const values = new Map<number, number>();
      for (const member of members as string[]) {
        const [time, value] = member.split(':').map(Number) as [number, number];
        if (!Number.isFinite(time) || !Number.isFinite(value)) continue;
        const slot = Math.round(time / this.stepSeconds) * this.stepSeconds;
        values.set(slot, value);
        oldest = Math.min(oldest, slot);
      }
      stored.set(series, values);
    });
    for (const time of firstSlot as string[]) oldest = Math.min(oldest, Math.round(Number(time) / this.stepSeconds) * this.stepSeconds);
    const times: number[] = [];
    if (Number.isFinite(oldest)) for (let time = oldest; time <= end; time += this.stepSeconds) times.push(time);
    const series = Object.fromEntries(SERIES.map((name) => [name, times.map((time) => stored.get(name)!.get(time) ?? null)])) as History['series'];
    return { stepSeconds: this.stepSeconds, times, series };
  }

  private key(series: SeriesName | 'times'): string {
    return `${this.base}:${series}`;
  }
}
