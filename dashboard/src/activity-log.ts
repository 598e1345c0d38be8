import type { Logger } from '@civildiy/common';
import type { Redis } from '@civildiy/common/redis';
import { Activity } from './contract.ts';

/** Who did something: a signed-in operator (the dashboard) or an OS user (the ops CLI). */
export type Actor = Activity['actor'];

/** What is recorded (the id and time are added). */
export type ActivityEntry = Omit<Activity, 'id' | 'at'>;

/** Entries kept (about; Redis trims the stream approximately). */
const KEPT = 1_000;

/**
 * Operators' actions: every one is logged (pino, `activity` field) and appended to a capped Redis
 * stream (`<prefix>:dashboard:activity`), which the dashboard lists and follows live — actions of
 * the ops CLI and of other dashboard instances included.
 */
export class ActivityLog {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly logger: Logger,
  ) {
    this.key = `${prefix}:dashboard:activity`;
  }

  /**
   * Records an action. Never throws: the action has happened, so a Redis failure here is logged
   * (with the action) rather than turned into a failed request.
   */
  async record(entry: ActivityEntry): Promise<Activity> {
    const at = new Date().toISOString();
    let id = `local-${Date.now()}`;
    try {
      id = (await this.redis.xadd(this.key, 'MAXLEN', '~', KEPT, '*', 'activity', JSON.stringify({ ...entry, at })))!;
    } catch (error) {
      this.logger.error({ err: error, activity: entry }, 'could not append the action to the activity list');
    }
    const activity: Activity = { id, at, ...entry };
    this.logger.info({ activity }, `${entry.actor.username ?? entry.actor.id} (${entry.actor.via}): ${entry.action} ${entry.target} → ${entry.outcome}`);
    return activity;
  }

  /** The newest `limit` actions, newest first. */
  async list(limit = 100): Promise<Activity[]> {
    return parse(await this.redis.xrevrange(this.key, '+', '-', 'COUNT', limit));
  }

  /** The actions after stream id `after`, oldest first (at most `limit`). */
  async after(after: string, limit = 100): Promise<Activity[]> {
    return parse(await this.redis.xrange(this.key, `(${after}`, '+', 'COUNT', limit));
  }

  /** The id of the newest action, or `0-0` when there is none (a cursor for {@link after}). */
  async newestId(): Promise<string> {
    const [newest] = await this.redis.xrevrange(this.key, '+', '-', 'COUNT', 1);
    return newest?.[0] ?? '0-0';
  }
}

function parse(entries: [id: string, fields: string[]][]): Activity[] {
  const activities: Activity[] = [];
  for (const [id, fields] of entries) {
    const index = fields.indexOf('activity');
    if (index < 0) continue;
    try {
      const parsed = Activity.safeParse({ ...(JSON.parse(fields[index + 1]!) as object), id });
      if (parsed.success) activities.push(parsed.data);
    } catch {
      // not one of ours
    }
  }
  return activities;
}
