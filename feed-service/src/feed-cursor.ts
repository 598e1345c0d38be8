import { isUuid, ValidationError } from '@civildiy/common';

/** A position in a feed: the last item of the previous page. */
export interface FeedCursor {
  /** That item's score (its creation time in ms). */
  score: number;
  postId: string;
}

/** The opaque cursor string of a position (base64url of `score:postId`). */
export function encodeCursor(cursor: FeedCursor): string {
  return Buffer.from(`${cursor.score}:${cursor.postId}`, 'utf8').toString('base64url');
}

/**
 * The position a cursor string names.
 * @throws ValidationError `feed.invalid_cursor` for anything {@link encodeCursor} did not produce.
 */
export function decodeCursor(value: string): FeedCursor {
  const invalid = () => new ValidationError('The cursor is not one this feed returned', 'feed.invalid_cursor');
  if (!/^[A-Za-z0-9_-]{1,120}$/.test(value)) throw invalid();
  const match = /^(-?\d{1,16}):([0-9a-fA-F-]{36})$/.exec(Buffer.from(value, 'base64url').toString('utf8'));
  const score = Number(match?.[1]);
  if (!match || !Number.isSafeInteger(score) || !isUuid(match[2]!)) throw invalid();
  return { score, postId: match[2]! };
}
