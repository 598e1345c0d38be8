import type { PostSnapshot } from '../contracts/posts.ts';
import { newId } from '../ids/index.ts';

const BASE_TIME = Date.parse('2025-01-01T00:00:00.000Z');

/**
 * A post at version 1 as posts-service publishes it in `post.created`, for consumers' tests (feed,
 * search): a new post id and author id, a raised-bed write-up, created `minute` minutes after a
 * fixed base time (default 0). Any field can be overridden.
 */
export function newPostSnapshot(overrides: Partial<PostSnapshot> & { minute?: number } = {}): PostSnapshot {
  const { minute = 0, ...rest } = overrides;
  const createdAt = new Date(BASE_TIME + minute * 60_000).toISOString();
  return {
    postId: newId(),
    authorId: newId(),
    authorUsername: 'builder',
    title: 'Raised garden bed',
    body: 'Cedar boards, galvanised screws and a weekend.',
    tags: ['garden'],
    expiresAt: null,
    version: 1,
    createdAt,
    updatedAt: createdAt,
    ...rest,
  };
}
