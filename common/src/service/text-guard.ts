import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../errors/index.ts';

/** Where in the request a NUL was found, as the validation errors name places: `body`, `querystring`, `params`. */
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

/** The path (outermost first) of the first string holding U+0000 in `value`, or undefined; built only on a find. */
function nulPath(value: unknown): string[] | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? [] : undefined;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = nulPath(value[index]);
      if (found) return [String(index), ...found];
    }
    return undefined;
  }
  // Parsed JSON and query strings only: a body kept as a stream or bytes (the gateway passes bodies
  // through untouched) is not text of this service's.
  if (isPlainObject(value)) {
    for (const key in value) {
      if (key.includes('\u0000')) return [key];
      const found = nulPath(value[key]);
      if (found) return [key, ...found];
    }
  }
  return undefined;
}

/**
 * Refuses text holding the NUL character (U+0000) anywhere in a request's JSON body, query string
 * or path parameters: 400 `validation_failed` naming the field. Postgres cannot store it in `text`
 * or `jsonb` ("invalid byte sequence"), so without this a `"\u0000"` in a title reached the
 * database and answered 500; no field of this API has a use for it.
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
      const path = nulPath(value);
      if (path) {
        done(new ValidationError(`Invalid request ${place}`, 'validation_failed', { details: [{ in: place, path: path.join('.'), message: 'must not contain the NUL character (U+0000)' }] }));
        return;
      }
    }
    done();
  });
}
