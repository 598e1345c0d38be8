import { createHash } from 'node:crypto';
import { ConflictError, ForbiddenError, NotFoundError, PreconditionFailedError, ValidationError, isUuid, newId } from '@civildiy/common';
import type { CreatePost, PostDeleted, UpdatePost } from '@civildiy/common/contracts';
import type { Post, PostsStore } from './posts-store.ts';

/** Who is writing: the verified user of the request. */
export interface Writer {
  id: string;
  username?: string;
}

/** A page of posts and the cursor of the next one (`null` at the end). */
export interface PostsPage {
  items: Post[];
  nextCursor: string | null;
}

/** Posts deleted per transaction by {@link removeExpiredPosts}: short transactions keep the write path free. */
const EXPIRY_BATCH = 100;

/** Conditional writes lost to concurrent ones before a PATCH gives up (each loss means another change went through). */
const MAX_WRITE_ATTEMPTS = 20;

function notFound(): NotFoundError {
  return new NotFoundError('No such post', 'posts.not_found');
}

function requireFuture(expiresAt: string | null | undefined, now: Date): Date | null | undefined {
  if (expiresAt === undefined || expiresAt === null) return expiresAt;
  const at = new Date(expiresAt);
  if (at.getTime() <= now.getTime()) {
    throw new ValidationError('expiresAt must be in the future', 'posts.expiry_in_past', { details: [{ in: 'body', path: 'expiresAt', message: 'must be in the future' }] });
  }
  return at;
}

/** SHA-256 of the create request in a canonical form, to tell a true repeat from a reused key. */
function requestHash(input: CreatePost): string {
  const expiresAt = input.expiresAt === undefined ? null : new Date(input.expiresAt).toISOString();
  return createHash('sha256').update(JSON.stringify([input.title, input.body, input.tags, expiresAt])).digest('hex');
}

/**
 * Publishes a post at version 1 (`post.created` goes out through the outbox). With an idempotency
 * key, a repeat of the same request returns the first post (`created: false`); the same key with
 * another body is a 409.
 */
export async function createPost(
  store: PostsStore,
  request: { author: Writer; input: CreatePost; idempotencyKey?: string | undefined; now?: Date },
): Promise<{ post: Post; created: boolean }> {
  const now = request.now ?? new Date();
  const { input } = request;
  const post: Post = {
    id: newId(),
    authorId: request.author.id,
    authorUsername: request.author.username ?? null,
    title: input.title,
    body: input.body,
    tags: input.tags,
    expiresAt: requireFuture(input.expiresAt, now) ?? null,
    version: 1,
    createdAt: now,
    updatedAt: now,
  };
  const hash = requestHash(input);
  const result = await store.create(post, request.idempotencyKey === undefined ? undefined : { key: request.idempotencyKey, requestHash: hash });
  if (!result.created && result.requestHash !== hash) {
    throw new ConflictError('This Idempotency-Key was used for a different post', 'posts.idempotency_key_reused', { details: { postId: result.post.id } });
  }
  return { post: result.post, created: result.created };
}

/** A visible post (not deleted, not expired). */
export async function getPost(store: PostsStore, id: string, now = new Date()): Promise<Post> {
  const post = await store.find(id, now);
  if (!post) throw notFound();
  return post;
}

/** The cursor is the last item's UUIDv7 in base64url: opaque to clients, and stable while posts are added. */
function encodeCursor(id: string): string {
  return Buffer.from(id.replaceAll('-', ''), 'hex').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const bytes = Buffer.from(cursor, 'base64url');
  const hex = bytes.toString('hex');
  const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  if (bytes.length !== 16 || bytes.toString('base64url') !== cursor || !isUuid(id)) {
    throw new ValidationError('The cursor is not one this service gave out', 'posts.invalid_cursor');
  }
  return id;
}

/**
 * A page of visible posts, newest first, optionally by one author and/or with one tag. Posts are
 * ordered by their time-ordered id and the cursor is the last id shown, so posts published while
 * a client pages are neither repeated nor skipped.
 */
export async function listPosts(
  store: PostsStore,
  query: { authorId?: string | undefined; tag?: string | undefined; cursor?: string | undefined; limit: number; now?: Date },
): Promise<PostsPage> {
  const beforeId = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const rows = await store.list({
    ...(query.authorId ? { authorId: query.authorId } : {}),
    ...(query.tag ? { tag: query.tag } : {}),
    ...(beforeId ? { beforeId } : {}),
    limit: query.limit + 1,
    now: query.now ?? new Date(),
  });
  const items = rows.slice(0, query.limit);
  return { items, nextCursor: rows.length > query.limit ? encodeCursor(items[items.length - 1]!.id) : null };
}

/**
 * Reads the post and checks who may change it and at which version. `ifMatch`: the versions the
 * client's `If-Match` names (any of them may match); `undefined` = no precondition.
 */
async function loadForChange(store: PostsStore, id: string, writer: Writer, ifMatch: number[] | undefined, now: Date): Promise<Post> {
  const current = await store.find(id, now);
  if (!current) throw notFound();
  if (current.authorId !== writer.id) throw new ForbiddenError('Only the author may change this post', 'posts.forbidden');
  if (ifMatch !== undefined && !ifMatch.includes(current.version)) {
    throw new PreconditionFailedError('The post has changed since that version', 'posts.version_mismatch', { details: { currentVersion: current.version } });
  }
  return current;
}

/**
 * Applies the author's changes at version + 1 (`post.updated` carries the whole new post). A
 * concurrent change in between is never overwritten: without `ifMatch` the patch is applied on top
 * of it, with `ifMatch` it is a 412.
 */
export async function updatePost(
  store: PostsStore,
  request: { id: string; writer: Writer; patch: UpdatePost; ifMatch?: number[] | undefined; now?: Date },
): Promise<Post> {
  const now = request.now ?? new Date();
  const { patch } = request;
  const expiresAt = requireFuture(patch.expiresAt, now);
  for (let attempt = 1; attempt <= MAX_WRITE_ATTEMPTS; attempt += 1) {
    const current = await loadForChange(store, request.id, request.writer, request.ifMatch, now);
    const next: Post = {
      ...current,
      authorUsername: request.writer.username ?? current.authorUsername,
      title: patch.title ?? current.title,
      body: patch.body ?? current.body,
      tags: patch.tags ?? current.tags,
      expiresAt: expiresAt === undefined ? current.expiresAt : expiresAt,
      version: current.version + 1,
      updatedAt: now,
    };
    if (await store.update(next, current.version)) return next;
  }
  throw new ConflictError('The post is changing too often; try again', 'posts.concurrent_update');
}

/** Deletes the post for its author; `post.deleted` carries version + 1 and reason `author`. */
export async function deletePost(
  store: PostsStore,
  request: { id: string; writer: Writer; ifMatch?: number[] | undefined; now?: Date },
): Promise<void> {
  const now = request.now ?? new Date();
  for (let attempt = 1; attempt <= MAX_WRITE_ATTEMPTS; attempt += 1) {
    const current = await loadForChange(store, request.id, request.writer, request.ifMatch, now);
    const deletion: PostDeleted = { postId: current.id, authorId: current.authorId, version: current.version + 1, reason: 'author', deletedAt: now.toISOString() };
    if (await store.delete(deletion, current.version)) return;
  }
  throw new ConflictError('The post is changing too often; try again', 'posts.concurrent_update');
}

/**
 * Deletes up to `limit` posts past their `expiresAt`, in short batches, each post with its
 * `post.deleted` (reason `expired`). Returns how many it deleted.
 */
export async function removeExpiredPosts(store: PostsStore, options: { limit: number; now?: Date }): Promise<number> {
  const now = options.now ?? new Date();
  let deleted = 0;
  while (deleted < options.limit) {
    const batch = Math.min(EXPIRY_BATCH, options.limit - deleted);
    const deletions = await store.deleteExpired(now, batch);
    deleted += deletions.length;
    if (deletions.length < batch) break;
  }
  return deleted;
}
