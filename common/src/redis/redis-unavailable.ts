/**
 * ioredis signals "Redis is not there" with plain errors: a command over `maxRetriesPerRequest`
 * while reconnecting, one past `commandTimeout` (a stalled server), one on a closed connection.
 */
const UNAVAILABLE_MESSAGES = ['Reached the max retries per request limit', 'Command timed out', 'Connection is closed.', "Stream isn't writeable"];

/**
 * Whether `error` (or one in its `cause` chain) means Redis could not be reached or did not answer in
 * time, as opposed to refusing a command. A request failing this way answers a retryable
 * `503 redis.unavailable` rather than `500`.
 */
export function isRedisUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (current.name === 'MaxRetriesPerRequestError') return true;
    const message = current.message;
    if (UNAVAILABLE_MESSAGES.some((fragment) => message.startsWith(fragment))) return true;
    current = current.cause;
  }
  return false;
}
