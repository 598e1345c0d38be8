import { z } from 'zod';
import { defineEvent } from '../events/define.ts';
import { defineTask } from '../tasks/define.ts';

/** A tag: lower-case letters, digits and `-`, e.g. `woodworking`, `raised-beds`. */
export const Tag = z.string().trim().toLowerCase().min(2).max(32).regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and -');

export const PostTitle = z.string().trim().min(1).max(200);
export const PostBody = z.string().trim().min(1).max(20_000);
/** Distinct tags, at most 10. */
export const PostTags = z.array(Tag).max(10).transform((tags) => [...new Set(tags)]);

/** `POST /posts` body. */
export const CreatePost = z.object({
  title: PostTitle,
  body: PostBody,
  tags: PostTags.default([]),
  /** When the post disappears by itself (the seeds' document TTL); must be in the future. */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});
export type CreatePost = z.infer<typeof CreatePost>;

/** `PATCH /posts/{id}` body: the fields to change (at least one); `expiresAt: null` removes the expiry. */
export const UpdatePost = z
  .object({
    title: PostTitle,
    body: PostBody,
    tags: PostTags,
    expiresAt: z.iso.datetime({ offset: true }).nullable(),
  })
  .partial()
  .refine((patch) => Object.values(patch).some((value) => value !== undefined), { message: 'change at least one field' });
export type UpdatePost = z.infer<typeof UpdatePost>;

/** A post as the API returns it and `post.created` / `post.updated` carry it. */
export const PostSnapshot = z.object({
  postId: z.uuid(),
  authorId: z.uuid(),
  /** The author's username when the post was last written (from the access token). */
  authorUsername: z.string().optional(),
  title: z.string(),
  body: z.string(),
  tags: z.array(z.string()),
  expiresAt: z.iso.datetime({ offset: true }).nullable(),
  /** 1 on creation, +1 on every change (the delete included). */
  version: z.number().int().positive(),
  createdAt: z.iso.datetime({ offset: true }),
  updatedAt: z.iso.datetime({ offset: true }),
});
export type PostSnapshot = z.infer<typeof PostSnapshot>;

/** Data of `post.deleted`. */
export const PostDeleted = z.object({
  postId: z.uuid(),
  authorId: z.uuid(),
  /** The version the delete produced (one more than the last snapshot's). */
  version: z.number().int().positive(),
  reason: z.enum(['author', 'expired']),
  deletedAt: z.iso.datetime({ offset: true }),
});
export type PostDeleted = z.infer<typeof PostDeleted>;

/** Topic of every post event; key = post id. */
export const POSTS_TOPIC = 'posts-events';

/** A post was published. Consumers: feed-service, search-service. */
export const postCreated = defineEvent({
  topic: POSTS_TOPIC,
  type: 'post.created',
  version: 1,
  data: PostSnapshot,
  key: (data) => data.postId,
  description: 'A post was published; carries the whole post.',
});

/** A post was edited; carries the whole post at its new version. */
export const postUpdated = defineEvent({
  topic: POSTS_TOPIC,
  type: 'post.updated',
  version: 1,
  data: PostSnapshot,
  key: (data) => data.postId,
  description: 'A post was edited; carries the whole post at its new version.',
});

/** A post was deleted by its author or expired. Consumers keep a tombstone at this version. */
export const postDeleted = defineEvent({
  topic: POSTS_TOPIC,
  type: 'post.deleted',
  version: 1,
  data: PostDeleted,
  key: (data) => data.postId,
  description: 'A post was deleted (by its author, or because it expired).',
});

/** Input of `posts.expire`. */
export const ExpirePosts = z.object({
  /** At most this many posts per run (the next run takes the rest). */
  limit: z.number().int().min(1).max(10_000).default(500),
});
/** Output of `posts.expire`. */
export const ExpiredPosts = z.object({ deleted: z.number().int().nonnegative() });

/** Deletes posts past `expiresAt`, each with a `post.deleted` (reason `expired`). Scheduled by posts-service. */
export const expirePosts = defineTask({
  name: 'posts.expire',
  queue: 'posts-maintenance',
  input: ExpirePosts,
  output: ExpiredPosts,
  retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 1_000 } },
  timeoutMs: 60_000,
  description: 'Removes expired posts (the seeds document TTL) and emits post.deleted with reason expired.',
});
