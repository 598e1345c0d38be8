import { ValidationError } from '../errors/index.ts';

/** The deepest JSON nesting (objects and arrays) a request body may have. No contract comes close. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Measures the nesting depth of JSON text as it streams by, in one pass with constant memory and no
 * recursion, so the limit can be checked before anything parses (or recurses over) the text: a body
 * nested 5,000 levels deep overflowed the stack of code that walked the parsed value.
 *
 * It only tracks strings (and their escapes) and brackets; whether the text is valid JSON is the
 * parser's business. Feed it the bytes or characters in order with {@link push}.
 */
export class JsonDepthScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** The greatest depth seen so far. */
  maxSeen = 0;

  constructor(private readonly limit = MAX_JSON_DEPTH) {}

  /** Scans the next piece of the text; returns false as soon as the depth goes over the limit. */
  push(chunk: string | Uint8Array): boolean {
    const text = typeof chunk === 'string';
    const length = chunk.length;
    for (let i = 0; i < length; i++) {
      // Every character that matters is ASCII, so bytes and UTF-16 code units scan alike.
      const c = text ? (chunk as string).charCodeAt(i) : (chunk as Uint8Array)[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) this.inString = false;
      } else if (c === QUOTE) {
        this.inString = true;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (++this.depth > this.maxSeen) {
          this.maxSeen = this.depth;
          if (this.depth > this.limit) return false;
        }
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        this.depth--;
      }
    }
    return true;
  }
}

/** `400 json_too_deep`: the body nests objects or arrays deeper than `limit`. */
export function jsonTooDeep(limit = MAX_JSON_DEPTH): ValidationError {
  return new ValidationError(`The JSON body nests deeper than ${limit} levels`, 'json_too_deep');
}
