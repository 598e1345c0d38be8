import { and, asc, desc, eq, gt, inArray, isNull, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import { postCreated, postDeleted, postUpdated, type PostDeleted } from '@civildiy/common/contracts';
import { isUniqueViolation, type Database } from '@civildiy/common/db';
import { outbox } from '@civildiy/common/outbox';
import { posts } from './db/schema.ts';
import type * as schema from './db/schema.ts';
import { toSnapshot, type CreateResult, type IdempotencyRecord, type Post, type PostsQuery, type PostsStore } from './posts-store.ts';

type PostRow = typeof posts.$inferSelect;

function toPost(row: PostRow): Post {
  return {
    id: row.id,
    authorId: row.authorId,
    authorUsername: row.authorUsername,
    title: row.doc.title,
    body: row.doc.body,
    tags: row.doc.tags,
    expiresAt: row.expiresAt,
    version: row.version,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

function notExpired(now: Date): SQL {
  return or(isNull(posts.expiresAt), gt(posts.expiresAt, now))!;
}

/**
 * {@link PostsStore} on Postgres or PGlite through Drizzle. Title, body and tags live in one JSONB
 * `doc` (tags filtered through a GIN index on `doc->'tags'`); the rest are columns the queries sort,
 * filter or lock on. Every write is one short transaction: the row change and its outbox row.
 */
export class PgPostsStore implements PostsStore {
  private readonly db: Database<typeof schema>;

  constructor(options: { db: Database<typeof schema> }) {
    this.db = options.db;
  }

  async create(post: Post, idempotency?: IdempotencyRecord): Promise<CreateResult> {
    try {
      await this.db.transaction(async (tx) => {
        await tx.insert(posts).values({
          id: post.id,
          authorId: post.authorId,
          authorUsername: post.authorUsername,
          doc: { title: post.title, body: post.body, tags: post.tags },
          version: post.version,
          expiresAt: post.expiresAt,
          createdAt: post.createdAt,
          updatedAt: post.updatedAt,
          idempotencyKey: idempotency?.key ?? null,
          requestHash: idempotency?.requestHash ?? null,
        });
        await outbox.event(tx, postCreated, toSnapshot(post));
      });
    } catch (error) {
      // The key is taken (a repeat, or a concurrent request that committed first): answer with that post.
      if (idempotency && isUniqueViolation(error)) {
        const [row] = await this.db
          .select()
          .from(posts)
          .where(and(eq(posts.authorId, post.authorId), eq(posts.idempotencyKey, idempotency.key)));
        if (row) return { created: false, post: toPost(row), requestHash: row.requestHash ?? '' };
      }
      throw error;
    }
    return { created: true, post };
  }

  async find(id: string, now: Date): Promise<Post | undefined> {
    const [row] = await this.db
      .select()
      .from(posts)
      .where(and(eq(posts.id, id), notExpired(now)));
    return row ? toPost(row) : undefined;
  }

  async list(query: PostsQuery): Promise<Post[]> {
    const conditions = [notExpired(query.now)];
    if (query.authorId) conditions.push(eq(posts.authorId, query.authorId));
    if (query.tag) conditions.push(sql`${posts.doc} -> 'tags' @> ${JSON.stringify([query.tag])}::jsonb`);
    if (query.beforeId) conditions.push(lt(posts.id, query.beforeId));
    const rows = await this.db
      .select()
      .from(posts)
      .where(and(...conditions))
      .orderBy(desc(posts.id))
      .limit(query.limit);
    return rows.map(toPost);
  }

  async update(next: Post, expectedVersion: number): Promise<boolean> {
    const updated = await this.db.transaction(async (tx) => {
      const rows = await tx
        .update(posts)
        .set({
          authorUsername: next.authorUsername,
          doc: { title: next.title, body: next.body, tags: next.tags },
          version: next.version,
          expiresAt: next.expiresAt,
          updatedAt: next.updatedAt,
        })
        .where(and(eq(posts.id, next.id), eq(posts.version, expectedVersion)))
        .returning({ id: posts.id });
      if (rows.length === 0) return false;
      await outbox.event(tx, postUpdated, toSnapshot(next));
      return true;
    });
    return updated;
  }

  async delete(deletion: PostDeleted, expectedVersion: number): Promise<boolean> {
    const deleted = await this.db.transaction(async (tx) => {
      const rows = await tx
        .delete(posts)
        .where(and(eq(posts.id, deletion.postId), eq(posts.version, expectedVersion)))
        .returning({ id: posts.id });
      if (rows.length === 0) return false;
      await outbox.event(tx, postDeleted, deletion);
      return true;
    });
    return deleted;
  }

  async deleteExpired(now: Date, limit: number): Promise<PostDeleted[]> {
    const deletions = await this.db.transaction(async (tx) => {
      // Rows another run has locked are skipped, so concurrent runs never delete (and announce) one post twice.
      const due = await tx
        .select({ id: posts.id, authorId: posts.authorId, version: posts.version })
        .from(posts)
        .where(lte(posts.expiresAt, now))
        .orderBy(asc(posts.expiresAt))
        .limit(limit)
        .for('update', { skipLocked: true });
      if (due.length === 0) return [];
      await tx.delete(posts).where(inArray(posts.id, due.map((row) => row.id)));
      const result: PostDeleted[] = due.map((row) => ({
        postId: row.id,
        authorId: row.authorId,
        version: row.version + 1,
        reason: 'expired',
        deletedAt: now.toISOString(),
      }));
      for (const deletion of result) await outbox.event(tx, postDeleted, deletion);
      return result;
    });
    return deletions;
  }
}
