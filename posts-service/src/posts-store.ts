import type { PostDeleted, PostSnapshot } from '@civildiy/common/contracts';

/** A post as the write model holds it. */
export interface Post {
  id: string;
  authorId: string;
  /** The author's username when the post was last written (from the access token). */
  authorUsername: string | null;
  title: string;
  body: string;
  tags: string[];
  expiresAt: Date | null;
  /** 1 on creation, +1 on every change. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/** The client's `Idempotency-Key` of a create, with the hash of the request it came with. */
export interface IdempotencyRecord {
  key: string;
  requestHash: string;
}

/** What {@link PostsStore.create} did. */
export type CreateResult =
  | { created: true; post: Post }
  /** The author already created a post under this idempotency key: that post and its request hash. */
  | { created: false; post: Post; requestHash: string };

/** Which posts {@link PostsStore.list} returns, newest first. */
export interface PostsQuery {
  authorId?: string;
  /** Only posts carrying this tag. */
  tag?: string;
  /** Only posts older than the post with this id (the previous page's last id). */
  beforeId?: string;
  limit: number;
  /** Posts with `expiresAt <= now` are hidden. */
  now: Date;
}

/**
 * The posts write model. Every method that changes a post writes the matching `posts-events` event
 * (`post.created`, `post.updated`, `post.deleted`) to the outbox atomically with the change, so an
 * event exists exactly when its change does. Conditional writes take the version the caller read:
 * a change computed from a stale read is refused instead of overwriting a newer one.
 *
 * Implemented on Postgres/PGlite by `PgPostsStore` (an outbox table in the same transaction) and on
 * MongoDB by `MongoPostsStore` (the events kept in the post's own document, written by the same
 * single-document update); one contract suite runs against both.
 */
export interface PostsStore {
  /**
   * Inserts a new post (version 1) with its `post.created`. With `idempotency`, a post the author
   * already created under the same key is returned instead (nothing is written).
   */
  create(post: Post, idempotency?: IdempotencyRecord): Promise<CreateResult>;
  /** The post, unless unknown, deleted or expired at `now`. */
  find(id: string, now: Date): Promise<Post | undefined>;
  /** A page of posts, newest (highest id) first, expired ones excluded. */
  list(query: PostsQuery): Promise<Post[]>;
  /**
   * Replaces the post with `next` (same id, its new version) and writes `post.updated`, if the
   * stored post is still at `expectedVersion`. Resolves `false` (nothing written) otherwise.
   */
  update(next: Post, expectedVersion: number): Promise<boolean>;
  /**
   * Deletes the post and writes `post.deleted` with `deletion`, if the stored post is still at
   * `expectedVersion`. Resolves `false` (nothing written) otherwise.
   */
  delete(deletion: PostDeleted, expectedVersion: number): Promise<boolean>;
  /**
   * Deletes up to `limit` posts whose `expiresAt <= now`, each with a `post.deleted` (reason
   * `expired`, version + 1, `deletedAt` = now) written atomically with its deletion. Safe to run concurrently:
   * a post is deleted, and its event written, by one run only. Returns the deletions.
   */
  deleteExpired(now: Date, limit: number): Promise<PostDeleted[]>;
}

/** The post as the API returns it and `post.created` / `post.updated` carry it. */
export function toSnapshot(post: Post): PostSnapshot {
  return {
    postId: post.id,
    authorId: post.authorId,
    ...(post.authorUsername === null ? {} : { authorUsername: post.authorUsername }),
    title: post.title,
    body: post.body,
    tags: post.tags,
    expiresAt: post.expiresAt?.toISOString() ?? null,
    version: post.version,
    createdAt: post.createdAt.toISOString(),
    updatedAt: post.updatedAt.toISOString(),
  };
}
