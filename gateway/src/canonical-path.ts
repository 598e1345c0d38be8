/** A request target in the one form the gateway routes, protects, limits and forwards. */
export type CanonicalTarget =
  /** `path`: the canonical path; `url`: it with the query string exactly as the client sent it. */
  | { ok: true; path: string; url: string }
  /** Why the target has no canonical form (the gateway answers 400 `gateway.invalid_path`). */
  | { ok: false; problem: string };

/** A path that is canonical already: segments of unreserved characters only, none of them `.` or `..`. */
const PLAIN_PATH = /^(?:\/(?!\.\.?(?:\/|$))[\w.~-]+)+$/;
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;
const HEX = /^[0-9a-f]{2}$/i;
// ignoreBOM: a leading U+FEFF is a character of the segment, not a marker to drop.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** RFC 3986 percent-encoding of everything but the unreserved characters, upper-case hex. */
function encodeSegment(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** One raw segment decoded exactly once, or the problem with it. */
function decodeSegment(raw: string): { text: string } | { problem: string } {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code === 0x25 /* % */) {
      const hex = raw.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return { problem: 'a malformed percent-escape' };
      const byte = Number.parseInt(hex, 16);
      // No resource path holds a control character; they are how log lines and headers get forged.
      if (byte < 0x20 || byte === 0x7f) return { problem: 'an encoded control character' };
      bytes.push(byte);
      i += 2;
    } else if (code === 0x5c /* \ */ || code === 0x23 /* # */) {
      return { problem: `a raw ${raw[i]}` };
    } else if (code <= 0x20 || code >= 0x7f) {
      // Node's parser refuses these on the wire; app.inject does not.
      return { problem: 'a character that must be percent-encoded' };
    } else {
      bytes.push(code);
    }
  }
  let text: string;
  try {
    text = UTF8.decode(Uint8Array.from(bytes));
  } catch {
    return { problem: 'escapes that are not UTF-8' };
  }
  if (text.includes('/') || text.includes('\\')) return { problem: 'an encoded / or \\ inside a segment' };
  if (text === '.' || text === '..') return { problem: 'a dot segment (. or ..)' };
  return { text };
}

/**
 * The canonical form of a request target (origin-form `/a/b?q`, or absolute-form, whose scheme and
 * authority are dropped): each path segment percent-decoded exactly once (`%2569` stays the three
 * characters `%69`) and re-encoded as RFC 3986 §6.2.2 normalises it (unreserved characters plain,
 * everything else `%XX` with upper-case hex), repeated and trailing slashes removed (every service
 * ignores a trailing slash, and no route has an empty segment), and the query string untouched.
 *
 * Refused, so that no component behind the gateway can read the path differently: an encoded `/` or
 * `\` inside a segment (a second decoder would split it), a raw `\` or `#`, malformed escapes, bytes
 * that are not UTF-8 (including overlong forms), control characters, and dot segments (`.` and `..`,
 * also encoded). Dot segments are refused rather than resolved: browsers and HTTP clients resolve
 * them before sending, so a request that still has them was written by hand, and resolving would make
 * the gateway guess for the services (which do not resolve them) what the client meant.
 *
 * Letter case is kept: paths are case-sensitive (the route table refuses case variants of its
 * prefixes, see `RouteTable.lookalike`).
 */
export function canonicalTarget(target: string): CanonicalTarget {
  const queryAt = target.indexOf('?');
  let path = queryAt === -1 ? target : target.slice(0, queryAt);
  const query = queryAt === -1 ? '' : target.slice(queryAt);
  const absolute = ABSOLUTE_FORM.exec(path);
  if (absolute) path = path.slice(absolute[0].length) || '/';
  if (path === '/' || PLAIN_PATH.test(path)) return { ok: true, path, url: absolute ? path + query : target };
  if (path[0] !== '/') return { ok: false, problem: 'a path that does not start with /' };

  const segments: string[] = [];
  for (const raw of path.split('/')) {
    if (raw === '') continue;
    const decoded = decodeSegment(raw);
    if ('problem' in decoded) return { ok: false, problem: decoded.problem };
    segments.push(encodeSegment(decoded.text));
  }
  const canonical = `/${segments.join('/')}`;
  return { ok: true, path: canonical, url: canonical + query };
}
