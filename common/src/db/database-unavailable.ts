/**
 * Telling a lost or refused database connection apart from a bad statement, on both drivers.
 *
 * A request or job that fails because the database is unreachable (a server restart, a failover, a
 * network cut, an embedded database closing during shutdown) should answer a retryable `503
 * database.unavailable` rather than `500`, and a job should be retried rather than failed.
 */

/** Thrown by the embedded database clients once their database is gone (closed, or its thread died). */
export class DatabaseGoneError extends Error {
  override readonly name = 'DatabaseGoneError';
}

/**
 * SQLSTATE classes and codes meaning "the connection or the server, not the statement": class 08
 * (connection exception), 53300 too_many_connections, 57P01 admin_shutdown (restart, terminated
 * backend), 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or shutting down).
 */
const UNAVAILABLE_SQLSTATES = new Set(['53300', '57P01', '57P02', '57P03']);
/** Socket-level error codes of node-postgres' connection. */
const UNAVAILABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** node-postgres and pg-pool signal a lost connection with plain errors, recognisable only by message. */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'is not queryable',
  'timeout exceeded when trying to connect',
  'Connection ended unexpectedly',
  'PGlite is closed',
];

/**
 * Whether `error` (or an error in its `cause` chain: Drizzle wraps driver errors) means the database
 * could not be reached or dropped the connection, as opposed to refusing the statement.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (current instanceof DatabaseGoneError) return true;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (/^08[0-9A-Z]{3}$/.test(code) || UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_SOCKET_CODES.has(code)) return true;
    }
    const message = current.message;
    if (UNAVAILABLE_MESSAGES.some((fragment) => message.includes(fragment))) return true;
    current = current.cause;
  }
  return false;
}
