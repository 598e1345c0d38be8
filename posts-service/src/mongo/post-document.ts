import type { Collection, Db } from 'mongodb';
import { z } from 'zod';
import type { EventEnvelope } from '@civildiy/common/events';
import type { Post } from '../posts-store.ts';
import { InvalidPostDocumentError } from './invalid-post-document-error.ts';

/** An event the relay could never publish as it is (not an envelope, or refused by the broker for good): kept on its post. */
export interface FailedEvent {
  /** The stored event, as it was. */
  event: unknown;
  /** A stable code: `outbox.invalid_envelope`, or the broker's permanent error code. */
  code: string;
  error: string;
  failedAt: Date;
}

/**
 * A post in the `posts` collection (the seed's posts collection, one document per post). Its
 * `post.*` events wait in the document itself until the relay has published them, so a change and
 * its event are written by one single-document update (see `MongoPostsStore`).
 */
export interface MongoPostDocument {
  /** The post id, a UUIDv7 as text: its order is the creation order, which the lists page by. */
  _id: string;
  authorId: string;
  /** Absent on a tombstone, as are title, body, tags and expiresAt. */
  authorUsername?: string | null;
  title?: string;
  body?: string;
  tags?: string[];
  expiresAt?: Date | null;
  /** 1 on creation, +1 on every change (the tombstone carries its `post.deleted`'s version). */
  version: number;
  createdAt: Date;
  updatedAt: Date;
  /**
   * UUIDv5 of author id + `Idempotency-Key` (unique, sparse index): the key is the author's own, and
   * taken once. Kept apart from the key itself because partial indexes are not available everywhere.
   */
  idempotencyId?: string;
  idempotencyKey?: string;
  /** SHA-256 of the canonical create request, to tell a true repeat from a key reused with another body. */
  requestHash?: string;
  /** Set when the post was deleted (by its author or by expiry): a tombstone, hidden from every read. */
  deletedAt?: Date | null;
  /** Envelopes of this post's changes not yet published, oldest first (the outbox of this post). */
  pendingEvents: EventEnvelope[];
  /**
   * Set while `pendingEvents` is not empty: when the relay may take the post next. A write sets it to
   * now (at the latest); a relay's lease or a failed publish's backoff move it later.
   */
  publishAfter?: Date;
  /** Publishing attempts that failed in a row (the backoff's exponent). */
  publishAttempts?: number;
  /** The relay batch that holds the post (until `publishAfter`). */
  leaseId?: string;
  failedEvents?: FailedEvent[];
  /** Set on a tombstone once every event is published: the TTL index removes the document then. */
  purgeAt?: Date;
}

/** The collection's name: the seed's. */
export const POSTS_COLLECTION = 'posts';

/** The posts collection of `db`. */
export function postsCollection(db: Db): Collection<MongoPostDocument> {
  return db.collection<MongoPostDocument>(POSTS_COLLECTION);
}

/**
 * The collection's indexes, besides `_id` (which the global list walks backwards, newest first):
 * - `author_newest`, `tags_newest`: a page by author or by tag, newest first (the cursor is an `_id`);
 * - `expires_at`: `deleteExpired`'s due posts;
 * - `idempotency`: one post per author and `Idempotency-Key` (unique; sparse, so posts without a key are not in it);
 * - `publish_after`: the relay's posts with events to publish (sparse: only those);
 * - `failed_events`: posts holding events that failed for good (sparse: only those), for the metrics;
 * - `purge_at`: a TTL index (`expireAfterSeconds: 0`): MongoDB deletes a tombstone once its `purgeAt`
 *   (set when its events are all published) has passed, within its TTL monitor's minute.
 */
export const POSTS_INDEXES = [
  { name: 'author_newest', key: { authorId: 1, _id: -1 } },
  { name: 'tags_newest', key: { tags: 1, _id: -1 } },
  { name: 'expires_at', key: { expiresAt: 1 } },
  { name: 'idempotency', key: { idempotencyId: 1 }, unique: true, sparse: true },
  { name: 'publish_after', key: { publishAfter: 1 }, sparse: true },
  { name: 'failed_events', key: { 'failedEvents.failedAt': 1 }, sparse: true },
  { name: 'purge_at', key: { purgeAt: 1 }, expireAfterSeconds: 0 },
] as const;

/** Creates the collection's indexes (a no-op for those that exist with the same definition). */
export async function ensurePostsIndexes(collection: Collection<MongoPostDocument>): Promise<void> {
  await collection.createIndexes(POSTS_INDEXES.map((index) => ({ ...index })));
}

/** What reads fetch: everything but the outbox fields, which can be long while the broker is away. */
export const POST_PROJECTION = { pendingEvents: 0, failedEvents: 0, publishAfter: 0, publishAttempts: 0, leaseId: 0 } as const;

/** A live post document as reads expect it. Not strict: fields added later are ignored. */
const LivePost = z.object({
  _id: z.string().min(1),
  authorId: z.string().min(1),
  authorUsername: z.string().nullish(),
  title: z.string(),
  body: z.string(),
  tags: z.array(z.string()),
  expiresAt: z.date().nullish(),
  version: z.number().int().positive(),
  createdAt: z.date(),
  updatedAt: z.date(),
});

/**
 * The post a live document holds.
 * @throws InvalidPostDocumentError (`posts.invalid_document`) when the document is not a post (written by hand, or corrupted).
 */
export function toPost(document: unknown): Post {
  const parsed = LivePost.safeParse(document);
  if (!parsed.success) throw new InvalidPostDocumentError((document as { _id?: unknown } | null)?._id, parsed.error);
  const doc = parsed.data;
  return {
    id: doc._id,
    authorId: doc.authorId,
    authorUsername: doc.authorUsername ?? null,
    title: doc.title,
    body: doc.body,
    tags: doc.tags,
    expiresAt: doc.expiresAt ?? null,
    version: doc.version,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
}
