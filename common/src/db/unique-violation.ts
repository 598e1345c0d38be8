/** SQLSTATE of a unique constraint violation. */
export const UNIQUE_VIOLATION = '23505';

interface PostgresErrorFields {
  code?: unknown;
  constraint?: unknown;
  cause?: unknown;
}

/**
 * The Postgres error behind `error`, if any: Drizzle wraps driver errors in a `DrizzleQueryError`
 * whose `cause` is node-postgres' `DatabaseError` or PGlite's (both carry `code` = SQLSTATE and
 * `constraint`), so the `cause` chain is followed.
 */
function findPostgresError(error: unknown): PostgresErrorFields | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    const fields = current as PostgresErrorFields;
    if (typeof fields.code === 'string' && /^[0-9A-Z]{5}$/.test(fields.code)) return fields;
    current = fields.cause;
  }
  return undefined;
}

/**
 * Whether `error` is a unique-constraint violation (SQLSTATE 23505), on PGlite and on node-postgres,
 * directly or wrapped by Drizzle. With `constraint`, only a violation of that constraint (e.g.
 * `users_email_unique`) counts.
 */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const found = findPostgresError(error);
  if (found?.code !== UNIQUE_VIOLATION) return false;
  return constraint === undefined || found.constraint === constraint;
}
