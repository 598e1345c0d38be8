import { ValidationError } from '@civildiy/common';

/** The strong ETag of a post version: `"3"`. */
export function etagOf(version: number): string {
  return `"${version}"`;
}

/**
 * The versions an `If-Match` header names, or `undefined` when there is no precondition (no header,
 * or `*`). Accepts `3`, `"3"`, `W/"3"` and comma-separated lists of them, since clients echo the
 * ETag in any of these forms.
 * @throws ValidationError (`posts.invalid_if_match`) for anything else.
 */
export function parseIfMatch(header: string | undefined): number[] | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const versions = header.split(',').map((part) => {
    const match = /^\s*(?:W\/)?("?)([1-9][0-9]{0,9})\1\s*$/.exec(part);
    if (!match) {
      throw new ValidationError('If-Match must name a post version, e.g. "3"', 'posts.invalid_if_match', { details: [{ in: 'headers', path: 'if-match', message: 'expected a version' }] });
    }
    return Number(match[2]);
  });
  return versions;
}
