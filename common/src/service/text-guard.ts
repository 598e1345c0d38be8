import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../errors/index.ts';

/** Where in the request the bad text was found, as the validation errors name places: `body`, `querystring`, `params`. */
type Place = 'body' | 'querystring' | 'params';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Path parameters and the query string as a plain object: Fastify builds them with prototypes of
 * its own, and their values are strings or arrays of strings.
 */
function stringMap(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' ? Object.fromEntries(Object.entries(value)) : undefined;
}

/** Matches a UTF-16 surrogate that is not half of a pair. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** What is wrong with a string, or undefined when it is text Postgres can store. */
function problemOf(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain the NUL character (U+0000)';
  // A lone surrogate has no UTF-8 form: jsonb refuses it (500 before this check) and text columns
  // silently store U+FFFD instead; refusing it is the one behaviour that is the same everywhere.
  if (LONE_SURROGATE.test(text)) return 'must be well-formed Unicode (a lone surrogate such as \\ud800 is not)';
  return undefined;
}

interface Found {
  path: string;
  message: string;
}

/** A value still to look at, and how it was reached (the path is only built when something is found). */
interface Frame {
  value: unknown;
  key: string | number | undefined;
  parent: Frame | undefined;
}

function pathOf(frame: Frame, lastKey?: string): string {
  const keys: (string | number)[] = lastKey === undefined ? [] : [lastKey];
  for (let at: Frame | undefined = frame; at?.key !== undefined; at = at.parent) keys.unshift(at.key);
  return keys.join('.');
}

/**
 * The first string (value or key) in `root` that {@link problemOf} refuses, with its path. Walks with
 * an explicit stack, so no nesting depth can overflow the call stack. Only parsed JSON and query
 * strings are walked: a body kept as a stream or bytes (the gateway passes bodies through) is not
 * text of this service's.
 */
function findBadText(root: unknown): Found | undefined {
  const stack: Frame[] = [{ value: root, key: undefined, parent: undefined }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    const value = frame.value;
    if (typeof value === 'string') {
      const message = problemOf(value);
      if (message) return { path: pathOf(frame), message };
    } else if (Array.isArray(value)) {
      // Pushed in reverse so the first bad element is the one reported.
      for (let index = value.length - 1; index >= 0; index--) stack.push({ value: value[index], key: index, parent: frame });
    } else if (isPlainObject(value)) {
      const keys = Object.keys(value);
      for (const key of keys) {
        const message = problemOf(key);
        if (message) return { path: pathOf(frame, key), message: `(the key) ${message}` };
      }
      for (let index = keys.length - 1; index >= 0; index--) stack.push({ value: value[keys[index]!], key: keys[index]!, parent: frame });
    }
  }
  return undefined;
}

/**
 * Refuses text that Postgres cannot store faithfully anywhere in a request's JSON body, query string
 * or path parameters, with 400 `validation_failed` naming the field: the NUL character (U+0000),
 * which `text` and `jsonb` refuse ("invalid byte sequence"), and lone UTF-16 surrogates
 * (`"\ud800"`), which `jsonb` refuses and `text` turns into U+FFFD. No field of this API has a use
 * for either.
 */
export function installTextGuard(app: FastifyInstance): void {
  // Callback style: an async hook would cost every request a promise.
  app.addHook('preValidation', (request, _reply, done) => {
    const places: [Place, unknown][] = [
      ['params', stringMap(request.params)],
      ['querystring', stringMap(request.query)],
      ['body', request.body],
    ];
    for (const [place, value] of places) {
      const found = findBadText(value);
      if (found) {
        done(new ValidationError(`Invalid request ${place}`, 'validation_failed', { details: [{ in: place, path: found.path, message: found.message }] }));
        return;
      }
    }
    done();
  });
}
