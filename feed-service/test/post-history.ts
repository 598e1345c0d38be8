import type { PostDeleted, PostSnapshot, Profile } from '@civildiy/common/contracts';
import { newPostSnapshot } from '@civildiy/common/testing';

/** Test data: posts and profiles at successive versions, as posts- and profile-service publish them. */

const BASE_TIME = Date.parse('2025-01-01T00:00:00.000Z');

/** A new post at version 1, created `minute` minutes after a fixed base time. */
export const newPost = newPostSnapshot;

/** The post edited: the next version with `changes`. */
export function edited(post: PostSnapshot, changes: Partial<Pick<PostSnapshot, 'title' | 'body' | 'tags'>> = {}): PostSnapshot {
  const version = post.version + 1;
  return { ...post, title: `${post.title} (v${version})`, ...changes, version, updatedAt: new Date(Date.parse(post.updatedAt) + 1_000).toISOString() };
}

/** The post deleted: the delete's data at the next version. */
export function deletion(post: PostSnapshot): PostDeleted {
  return { postId: post.postId, authorId: post.authorId, version: post.version + 1, reason: 'author', deletedAt: new Date(Date.parse(post.updatedAt) + 1_000).toISOString() };
}

/** A profile at `version` with `displayName`. */
export function profile(userId: string, version: number, displayName: string): Profile {
  const at = new Date(BASE_TIME + version * 1_000).toISOString();
  return { userId, username: 'builder', displayName, bio: '', location: '', skills: [], avatarUrl: null, version, createdAt: new Date(BASE_TIME).toISOString(), updatedAt: at };
}
