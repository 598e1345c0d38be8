import { z } from 'zod';
import type { PostSnapshot } from '@civildiy/common/contracts';

/** One entry of a feed as the API returns it. */
export const FeedItem = z.object({
  postId: z.uuid(),
  authorId: z.uuid(),
  /** The author's current display name (from `profile.updated`), else the username the post was written under. */
  authorDisplayName: z.string().nullable(),
  title: z.string(),
  /** The start of the body, about 280 characters, cut on a word boundary (`…` when cut). */
  excerpt: z.string(),
  tags: z.array(z.string()),
  /** When the post was published (its `createdAt`): the feed's order. */
  time: z.string(),
  updatedAt: z.string(),
  /** The post's version this item shows. */
  version: z.number().int().positive(),
});
export type FeedItem = z.infer<typeof FeedItem>;

/** What the read model stores per post: the item without the display name, which is joined at read time. */
export type StoredFeedItem = Omit<FeedItem, 'authorDisplayName'>;

/** Longest excerpt before the ellipsis. */
export const EXCERPT_LENGTH = 280;

/** The feed item of a post snapshot. */
export function toStoredItem(post: PostSnapshot): StoredFeedItem {
  return {
    postId: post.postId,
    authorId: post.authorId,
    title: post.title,
    excerpt: excerptOf(post.body),
    tags: post.tags,
    time: post.createdAt,
    updatedAt: post.updatedAt,
    version: post.version,
  };
}

/**
 * The first {@link EXCERPT_LENGTH} characters of `body` with whitespace collapsed, cut after the last
 * whole word that fits and ended with `…`; a single word longer than half the excerpt is cut inside.
 */
export function excerptOf(body: string, length = EXCERPT_LENGTH): string {
  const text = body.replace(/\s+/g, ' ').trim();
  if (text.length <= length) return text;
  let cut = text.lastIndexOf(' ', length);
  if (cut < length / 2) {
    cut = length;
    // Never split a surrogate pair (an emoji) in two.
    const code = text.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  }
  return `${text.slice(0, cut).trimEnd()}…`;
}
