import { and, eq, lt, sql } from 'drizzle-orm';
import type { PostDeleted, PostSnapshot } from '@civildiy/common/contracts';
import { indexQueue, postTombstones, postVectors } from './db/schema.ts';
import { liveGenerations, lockGenerations, type SearchDb, type SearchTx } from './search-state.ts';

/** What a post event did to the index: new work queued, nothing (an old or repeated version), or the post removed. */
export type PostEventOutcome = 'queued' | 'stale' | 'deleted';

const EXCERPT_CHARS = 240;

/** The text a post is embedded from: title, tags and body, cut to `maxChars`. */
export function indexText(post: Pick<PostSnapshot, 'title' | 'tags' | 'body'>, maxChars: number): string {
  const text = [post.title, post.tags.join(' '), post.body].filter((part) => part.length > 0).join('\n\n');
  return text.length <= maxChars ? text : text.slice(0, maxChars);
}

/** The start of the body on one line, cut at a word boundary. */
export function excerptOf(body: string): string {
  const flat = body.replace(/\s+/g, ' ').trim();
  if (flat.length <= EXCERPT_CHARS) return flat;
  const cut = flat.slice(0, EXCERPT_CHARS);
  const lastSpace = cut.lastIndexOf(' ');
  return `${(lastSpace > EXCERPT_CHARS / 2 ? cut.slice(0, lastSpace) : cut).trimEnd()}…`;
}

/**
 * Queues a post version for indexing in every live generation (inside the consumer's transaction).
 * Only a newer version than the row holds replaces it (and a claimed row of an older version is
 * then re-queued, so its in-flight batch no longer owns it); an older or equal version, or a version
 * of a deleted post, changes nothing.
 */
export async function queuePostVersion(tx: SearchTx, post: PostSnapshot, options: { textMaxChars: number }): Promise<PostEventOutcome> {
  const [tombstone] = await tx.select({ version: postTombstones.version }).from(postTombstones).where(eq(postTombstones.postId, post.postId));
  if (tombstone && tombstone.version >= post.version) return 'stale';
  const generations = liveGenerations(await lockGenerations(tx, 'share'));
  const fields = {
    postId: post.postId,
    version: post.version,
    text: indexText(post, options.textMaxChars),
    title: post.title,
    excerpt: excerptOf(post.body),
    authorId: post.authorId,
    authorUsername: post.authorUsername ?? null,
    tags: post.tags,
    postCreatedAt: new Date(post.createdAt),
  };
  const written = await tx
    .insert(indexQueue)
    .values(generations.map((generation) => ({ ...fields, generation })))
    .onConflictDoUpdate({
      target: [indexQueue.postId, indexQueue.generation],
      set: {
        version: sql`excluded.version`,
        text: sql`excluded.text`,
        title: sql`excluded.title`,
        excerpt: sql`excluded.excerpt`,
        authorId: sql`excluded.author_id`,
        authorUsername: sql`excluded.author_username`,
        tags: sql`excluded.tags`,
        postCreatedAt: sql`excluded.post_created_at`,
        status: 'pending',
        claimedBy: null,
        leaseUntil: null,
        attempts: 0,
        lastError: null,
        batchId: null,
        queuedAt: sql`clock_timestamp()`,
        finishedAt: null,
      },
      setWhere: sql`${indexQueue.version} < excluded.version`,
    })
    .returning({ generation: indexQueue.generation });
  return written.length > 0 ? 'queued' : 'stale';
}

/**
 * Removes a deleted post from every generation (vectors and index work) and keeps a tombstone at
 * the delete's version, so a create or update delivered late does not bring it back.
 */
export async function removePost(tx: SearchTx, deleted: PostDeleted): Promise<PostEventOutcome> {
  // Taken so a reindex starting now cannot copy the row this delete is removing.
  await lockGenerations(tx, 'share');
  await tx
    .insert(postTombstones)
    .values({ postId: deleted.postId, version: deleted.version, deletedAt: new Date(deleted.deletedAt) })
    .onConflictDoUpdate({
      target: postTombstones.postId,
      set: { version: sql`excluded.version`, deletedAt: sql`excluded.deleted_at` },
      setWhere: sql`${postTombstones.version} < excluded.version`,
    });
  await tx.delete(indexQueue).where(and(eq(indexQueue.postId, deleted.postId), lt(indexQueue.version, deleted.version)));
  await tx.delete(postVectors).where(and(eq(postVectors.postId, deleted.postId), lt(postVectors.version, deleted.version)));
  return 'deleted';
}

/**
 * Deletes tombstones older than `olderThanMs`; returns how many. Keep them longer than an event can
 * still arrive (the streams keep events 7 days), or a very late create could bring a post back.
 */
export async function forgetTombstones(db: SearchDb | SearchTx, olderThanMs: number): Promise<number> {
  const deleted = await db
    .delete(postTombstones)
    .where(lt(postTombstones.deletedAt, sql`now() - ${olderThanMs} * interval '1 millisecond'`))
    .returning({ postId: postTombstones.postId });
  return deleted.length;
}
