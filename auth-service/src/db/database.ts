import type { Database, DbTransaction } from '@civildiy/common/db';
import type * as schema from './schema.ts';

/** auth-service's database (PGlite or a Postgres server). */
export type AuthDatabase = Database<typeof schema>;
/** A transaction of {@link AuthDatabase}. */
export type AuthTransaction = DbTransaction<typeof schema>;
