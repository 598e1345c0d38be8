/**
 * Where the read model lives in Redis. Every key is under `<REDIS_KEY_PREFIX>:feed:`; the feeds
 * themselves are SYSTEM.md's keys inside a generation namespace `g<n>`, so a rebuild can fill
 * generation n+1 while n keeps serving, then swap by moving one pointer:
 *
 * - `feed:generation`: the generation the API and the live projection use (absent = 1)
 * - `feed:generation:last`: the last generation number handed out (numbers are never reused)
 * - `feed:rebuild`: hash `{ generation, group, startedAt }` while a rebuild fills a generation
 * - `feed:g<n>:activity:global`: sorted set post id → creation time in ms (newest 1,000)
 * - `feed:g<n>:activity:user:<userId>`: the same for one author (newest 100)
 * - `feed:g<n>:item:<postId>`: hash `{ version, state, author, username?, json }`; `state` is `live`
 *   (listed, `json` holds the item without the display name), `deleted` (tombstone) or `evicted`
 *   (trimmed out of every feed). The last two keep only the version and expire after the tombstone
 *   TTL (the event retention).
 * - `feed:g<n>:author:<userId>`: hash `{ version, name }`, the author's display name
 *
 * Lua scripts build the same names from {@link FeedKeys.base} (see `lua/`).
 */
export class FeedKeys {
  /** `<prefix>:feed:`, the start of every feed key. */
  readonly base: string;
  /** The generation pointer. */
  readonly generation: string;
  /** The last generation number handed out. */
  readonly lastAllocated: string;
  /** The rebuild marker. */
  readonly rebuild: string;

  constructor(prefix: string) {
    this.base = `${prefix}:feed:`;
    this.generation = `${this.base}generation`;
    this.lastAllocated = `${this.base}generation:last`;
    this.rebuild = `${this.base}rebuild`;
  }

  /** The keys of one generation. */
  of(generation: number): GenerationKeys {
    const root = `${this.base}g${generation}:`;
    return {
      pattern: `${root}*`,
      global: `${root}activity:global`,
      user: (userId) => `${root}activity:user:${userId}`,
      item: (postId) => `${root}item:${postId}`,
      author: (userId) => `${root}author:${userId}`,
      root,
    };
  }
}

/** The keys of one generation of the read model. */
export interface GenerationKeys {
  /** `…:feed:g<n>:` */
  root: string;
  /** A SCAN pattern matching every key of the generation. */
  pattern: string;
  global: string;
  user(userId: string): string;
  item(postId: string): string;
  author(userId: string): string;
}

/** The generation served when the pointer has never been set. */
export const FIRST_GENERATION = 1;
