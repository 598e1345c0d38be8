import { and, eq, inArray, lt, sql } from 'drizzle-orm';
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

/** A post event as the index applies it. */
export type PostChange = { kind: 'version'; post: PostSnapshot } | { kind: 'delete'; deleted: PostDeleted };

/**
 * Applies post events of distinct posts inside the consumer's transaction, returning each one's
 * outcome in order. A version is queued for indexing in every live generation; only a newer version
 * than the row holds replaces it (and a claimed row of an older version is then re-queued, so its
 * in-flight batch no longer owns it); an older or equal version, or a version of a deleted post,
 * changes nothing. A delete removes the post from every generation (vectors and index work) and
 * keeps a tombstone at its version, so a create or update delivered late does not bring it back.
 *
 * The statements are per batch, not per event: the generations are locked once, the tombstones of
 * every version read in one statement and the versions queued in one.
 */
export async function applyPostChanges(tx: SearchTx, changes: readonly PostChange[], options: { textMaxChars: number }): Promise<PostEventOutcome[]> {
  // First, like every writer that touches both: search_state before index rows, so none deadlocks with
  // a batcher; `share` also keeps a reindex starting now from copying a row a delete is removing.
  const generations = liveGenerations(await lockGenerations(tx, 'share'));
  const outcomes: PostEventOutcome[] = changes.map(() => 'stale');
  const versions = changes.flatMap((change, index) => (change.kind === 'version' ? [{ post: change.post, index }] : []));
  const queued = await queueVersions(tx, versions.map(({ post }) => post), generations, options);
  for (const { post, index } of versions) if (queued.has(post.postId)) outcomes[index] = 'queued';
  for (const [index, change] of changes.entries()) {
    if (change.kind !== 'delete') continue;
    await removePost(tx, change.deleted);
    outcomes[index] = 'deleted';
  }
  return outcomes;
}

/** Queues the versions (of distinct posts) that are newer than their tombstones and queued rows; returns the posts queued. */
async function queueVersions(tx: SearchTx, posts: readonly PostSnapshot[], generations: readonly number[], options: { textMaxChars: number }): Promise<Set<string>> {
  if (posts.length === 0) return new Set();
  const tombstones = await tx
    .select({ postId: postTombstones.postId, version: postTombstones.version })
    .from(postTombstones)
    .where(inArray(postTombstones.postId, posts.map((post) => post.postId)));
  const deletedAt = new Map(tombstones.map((row) => [row.postId, row.version]));
  const live = posts.filter((post) => (deletedAt.get(post.postId) ?? 0) < post.version);
  if (live.length === 0) return new Set();
  const rows = live.flatMap((post) => {
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
    return generations.map((generation) => ({ ...fields, generation }));
  });
  const written = await tx
    .insert(indexQueue)
    .values(rows)
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
    .returning({ postId: indexQueue.postId });
  return new Set(written.map((row) => row.postId));
}

/** Removes a deleted post (the generations are locked by the caller) and keeps its tombstone. */
async function removePost(tx: SearchTx, deleted: PostDeleted): Promise<void> {
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
