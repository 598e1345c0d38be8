import { postCreated, postDeleted, postUpdated, profileUpdated, type PostDeleted, type PostSnapshot, type Profile } from '@civildiy/common/contracts';
import { isEvent, type EnvelopeOf } from '@civildiy/common/events';
import type { Redis } from '@civildiy/common/redis';
import { toStoredItem } from './feed-item.ts';
import { FeedKeys } from './feed-keys.ts';
import { LuaScript } from './lua-script.ts';

/** The events the feed is projected from. */
export const FEED_EVENTS = [postCreated, postUpdated, postDeleted, profileUpdated] as const;
export type FeedEvent = EnvelopeOf<(typeof FEED_EVENTS)[number]>;

/** What applying one event did: `applied`, or why it changed nothing. */
export type ProjectionOutcome =
  | 'applied'
  /** That version of the post or profile is already held (a redelivery). */
  | 'duplicate'
  /** A newer version is held (the event arrived late). */
  | 'stale'
  /** The post is deleted at that version or later (a create or update arriving after its delete). */
  | 'deleted';

/** Options of {@link FeedProjection}. */
export interface FeedProjectionOptions {
  redis: Redis;
  /** `REDIS_KEY_PREFIX`. */
  prefix: string;
  /** How long tombstones and eviction marks keep a post's version. Default: 7 days (the event retention). */
  tombstoneTtlMs?: number;
  /** Posts kept in the global feed. Default: 1,000. */
  globalSize?: number;
  /** Posts kept in each author's feed. Default: 100. */
  userSize?: number;
  /**
   * Write this generation only (a rebuild filling the next one). Default: the live projection,
   * which writes the generation served and, while a rebuild runs, the one it fills.
   */
  generation?: number;
}

const script = LuaScript.file('project.lua');
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Applies post and profile events to the Redis read model, one atomic script per event. Idempotent
 * and order-tolerant: the highest version of a post or profile wins, a deleted post keeps a
 * tombstone, and the feeds keep their newest posts only (records of posts trimmed out of every
 * feed are dropped).
 */
export class FeedProjection {
  private readonly redis: Redis;
  private readonly keys: FeedKeys;
  private readonly tombstoneTtlMs: number;
  private readonly globalSize: number;
  private readonly userSize: number;
  private readonly target: string;

  constructor(options: FeedProjectionOptions) {
    this.redis = options.redis;
    this.keys = new FeedKeys(options.prefix);
    this.tombstoneTtlMs = options.tombstoneTtlMs ?? 7 * DAY_MS;
    this.globalSize = options.globalSize ?? 1_000;
    this.userSize = options.userSize ?? 100;
    this.target = options.generation === undefined ? '' : String(options.generation);
  }

  /** Applies any event of {@link FEED_EVENTS}. */
  apply(envelope: FeedEvent): Promise<ProjectionOutcome> {
    const { type, version } = envelope;
    if (isEvent(postCreated, envelope) || isEvent(postUpdated, envelope)) return this.applyPost(envelope.data);
    if (isEvent(postDeleted, envelope)) return this.applyDelete(envelope.data);
    if (isEvent(profileUpdated, envelope)) return this.applyProfile(envelope.data);
    throw new TypeError(`The feed does not project ${type} v${version}`);
  }

  /** A post created or edited: listed (or refreshed) in the global and its author's feed. */
  applyPost(post: PostSnapshot): Promise<ProjectionOutcome> {
    const score = Date.parse(post.createdAt);
    return this.run(
      'post', post.postId, post.authorId, post.version, score, JSON.stringify(toStoredItem(post)), post.authorUsername ?? '',
      this.globalSize, this.userSize, this.tombstoneTtlMs,
    );
  }

  /** A post deleted: unlisted everywhere, with a tombstone. */
  applyDelete(deleted: PostDeleted): Promise<ProjectionOutcome> {
    return this.run('delete', deleted.postId, deleted.authorId, deleted.version, this.tombstoneTtlMs);
  }

  /** A profile created or changed: its display name shows on every item of the author. */
  applyProfile(profile: Profile): Promise<ProjectionOutcome> {
    return this.run('profile', profile.userId, profile.version, profile.displayName);
  }

  private async run(...args: (string | number)[]): Promise<ProjectionOutcome> {
    const outcome = await script.run(this.redis, [this.keys.generation, this.keys.rebuild], [this.keys.base, this.target, ...args]);
    return outcome as ProjectionOutcome;
  }
}
