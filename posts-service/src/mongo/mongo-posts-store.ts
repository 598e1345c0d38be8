import type { Collection, Filter, UpdateFilter } from 'mongodb';
import { MongoServerError } from 'mongodb';
import { assertBeforeDeadline, derivedId, type Logger } from '@civildiy/common';
import { postCreated, postDeleted, postUpdated, type PostDeleted } from '@civildiy/common/contracts';
import { createEnvelope, type EventEnvelope } from '@civildiy/common/events';
import { toSnapshot, type CreateResult, type IdempotencyRecord, type Post, type PostsQuery, type PostsStore } from '../posts-store.ts';
import { mongoOperation } from './mongo-unavailable.ts';
import { POST_PROJECTION, toPost, type MongoPostDocument } from './post-document.ts';

/** Called with the events a write added to the outbox, once it is stored (the relay's wake-up). */
export type EventsWrittenListener = (events: readonly EventEnvelope[]) => void;

/** Options of {@link MongoPostsStore}. */
export interface MongoPostsStoreOptions {
  /** The posts collection (`postsCollection(db)`, indexes made by `ensurePostsIndexes`). */
  collection: Collection<MongoPostDocument>;
  /** Documents `deleteExpired` has to pass over (not posts as this service writes them) are logged here. Default: none. */
  logger?: Logger;
}

/** A document that is not a tombstone. */
const LIVE = { deletedAt: null } as const;

/** Live and not expired at `now`. */
function visibleAt(now: Date): Filter<MongoPostDocument> {
  return { ...LIVE, $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] };
}

/** Adds `event` to the post's outbox in the same update, and makes the post due for the relay now. */
function withEvent(update: UpdateFilter<MongoPostDocument>, event: EventEnvelope): UpdateFilter<MongoPostDocument> {
  return { ...update, $push: { pendingEvents: event }, $min: { publishAfter: new Date() } };
}

/** Turns a post into a tombstone: its content goes at once, the document stays until its `post.deleted` is published. */
function tombstone(deletion: PostDeleted): UpdateFilter<MongoPostDocument> {
  return {
    $set: { version: deletion.version, deletedAt: new Date(deletion.deletedAt) },
    $unset: { authorUsername: '', title: '', body: '', tags: '', expiresAt: '', idempotencyId: '', idempotencyKey: '', requestHash: '' },
  };
}

function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === 11000;
}

/**
 * {@link PostsStore} on MongoDB: one document per post in the `posts` collection.
 *
 * **The outbox lives in the post.** Each change pushes its event envelope into the document's
 * `pendingEvents` in the same single-document update that makes the change, so a change and its
 * event exist together or not at all — atomically on any MongoDB (a standalone server too, and
 * mongo-java-server in the tests), with no multi-document transaction. The alternative, a separate
 * outbox collection written in a transaction, needs a replica set and costs a transaction per write.
 * `MongoOutboxRelay` publishes a post's pending events in order and pulls them once published.
 *
 * **Deletes leave a tombstone.** A delete (by the author or by expiry) removes the content at once
 * and keeps the document, marked `deletedAt` and hidden from every read, until its `post.deleted` is
 * published; the relay then sets `purgeAt` and a TTL index on `purgeAt` has MongoDB remove the
 * document by itself. A TTL index on `expiresAt` would delete expired posts silently (no
 * `post.deleted`: feeds and search would keep them), so expiry works like this instead: reads hide
 * posts with `expiresAt <= now` at once, the `posts.expire` task (`deleteExpired`) turns them into
 * tombstones with `post.deleted` (reason `expired`), and the TTL index removes the tombstones.
 *
 * **Conditional writes** match on `_id` and the expected `version` (and on not being a tombstone), so
 * a stale change matches nothing and writes nothing, as in the Postgres store. Idempotent creates:
 * the author's `Idempotency-Key` is stored as a derived id under a unique index, so a repeat (or a
 * concurrent twin) fails on it and gets the first post back.
 */
export class MongoPostsStore implements PostsStore {
  private readonly collection: Collection<MongoPostDocument>;
  private readonly logger: Logger | undefined;
  private readonly listeners = new Set<EventsWrittenListener>();

  constructor(options: MongoPostsStoreOptions) {
    this.collection = options.collection;
    this.logger = options.logger;
  }

  /**
   * Calls `listener` after each write that added events to the outbox (to wake the relay); returns
   * the function that removes it. A listener must not throw.
   */
  onEventsWritten(listener: EventsWrittenListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async create(post: Post, idempotency?: IdempotencyRecord): Promise<CreateResult> {
    // Built (and validated against the contract) first: a post whose event is invalid is not written.
    const event = createEnvelope(postCreated, toSnapshot(post));
    const idempotencyId = idempotency ? derivedId('posts.idempotency', post.authorId, idempotency.key) : undefined;
    const document: MongoPostDocument = {
      _id: post.id,
      authorId: post.authorId,
      authorUsername: post.authorUsername,
      title: post.title,
      body: post.body,
      tags: post.tags,
      expiresAt: post.expiresAt,
      version: post.version,
      createdAt: post.createdAt,
      updatedAt: post.updatedAt,
      ...(idempotency ? { idempotencyId, idempotencyKey: idempotency.key, requestHash: idempotency.requestHash } : {}),
      pendingEvents: [event],
      publishAfter: new Date(),
    };
    assertBeforeDeadline('the write');
    try {
      await mongoOperation(() => this.collection.insertOne(document));
    } catch (error) {
      // The key is taken (a repeat, or a concurrent request that was stored first): answer with that post.
      if (idempotencyId && isDuplicateKey(error)) {
        const first = await mongoOperation(() => this.collection.findOne({ idempotencyId }, { projection: POST_PROJECTION }));
        if (first) return { created: false, post: toPost(first), requestHash: first.requestHash ?? '' };
      }
      throw error;
    }
    this.written([event]);
    return { created: true, post };
  }

  async find(id: string, now: Date): Promise<Post | undefined> {
    const document = await mongoOperation(() => this.collection.findOne({ _id: id, ...visibleAt(now) }, { projection: POST_PROJECTION }));
    return document ? toPost(document) : undefined;
  }

  async list(query: PostsQuery): Promise<Post[]> {
    const filter: Filter<MongoPostDocument> = visibleAt(query.now);
    if (query.authorId) filter.authorId = query.authorId;
    if (query.tag) filter.tags = query.tag;
    if (query.beforeId) filter._id = { $lt: query.beforeId };
    const documents = await mongoOperation(() =>
      this.collection.find(filter, { projection: POST_PROJECTION, sort: { _id: -1 }, limit: query.limit }).toArray(),
    );
    return documents.map(toPost);
  }

  async update(next: Post, expectedVersion: number): Promise<boolean> {
    const event = createEnvelope(postUpdated, toSnapshot(next));
    assertBeforeDeadline('the write');
    const change = {
      $set: {
        authorUsername: next.authorUsername,
        title: next.title,
        body: next.body,
        tags: next.tags,
        expiresAt: next.expiresAt,
        version: next.version,
        updatedAt: next.updatedAt,
      },
    };
    const result = await mongoOperation(() => this.collection.updateOne({ _id: next.id, version: expectedVersion, ...LIVE }, withEvent(change, event)));
    if (result.matchedCount === 0) return false;
    this.written([event]);
    return true;
  }

  async delete(deletion: PostDeleted, expectedVersion: number): Promise<boolean> {
    const event = createEnvelope(postDeleted, deletion);
    assertBeforeDeadline('the write');
    const result = await mongoOperation(() =>
      this.collection.updateOne({ _id: deletion.postId, version: expectedVersion, ...LIVE }, withEvent(tombstone(deletion), event)),
    );
    if (result.matchedCount === 0) return false;
    this.written([event]);
    return true;
  }

  /**
   * Each due post becomes a tombstone by an update conditional on the version read, so of runs
   * racing for a post exactly one wins it (and writes its `post.deleted`); a run that loses a post
   * goes on with the next due ones, so it returns fewer than `limit` only when none are left.
   */
  async deleteExpired(now: Date, limit: number): Promise<PostDeleted[]> {
    const deletions: PostDeleted[] = [];
    const passed: string[] = [];
    while (deletions.length < limit) {
      const filter: Filter<MongoPostDocument> = { ...LIVE, expiresAt: { $lte: now }, ...(passed.length > 0 ? { _id: { $nin: passed } } : {}) };
      const due = await mongoOperation(() =>
        this.collection.find(filter, { projection: { authorId: 1, version: 1 }, sort: { expiresAt: 1 }, limit: limit - deletions.length }).toArray(),
      );
      if (due.length === 0) break;
      for (const post of due) {
        const deletion: PostDeleted = { postId: post._id, authorId: post.authorId, version: post.version + 1, reason: 'expired', deletedAt: now.toISOString() };
        let event: EventEnvelope;
        try {
          event = createEnvelope(postDeleted, deletion);
        } catch (error) {
          this.logger?.error({ err: error, postId: post._id }, 'posts.expire: this document is not a valid post; it is left as it is');
          passed.push(post._id);
          continue;
        }
        const result = await mongoOperation(() =>
          this.collection.updateOne({ _id: post._id, version: post.version, ...LIVE, expiresAt: { $lte: now } }, withEvent(tombstone(deletion), event)),
        );
        if (result.matchedCount === 0) {
          passed.push(post._id); // another run took it, or it changed since it was read
          continue;
        }
        deletions.push(deletion);
        this.written([event]);
      }
    }
    return deletions;
  }

  private written(events: readonly EventEnvelope[]): void {
    for (const listener of this.listeners) listener(events);
  }
}
