import { NotFoundError } from '@civildiy/common';
import type { Role } from '@civildiy/common/contracts';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { AuthDatabase, AuthTransaction } from './db/database.ts';
import { userRoles, users } from './db/schema.ts';

/** An account and its roles, as `list` shows them. */
export interface RoleHolder {
  userId: string;
  email: string;
  username: string;
  roles: { role: Role; grantedAt: string; grantedBy: string }[];
}

/** What a grant or a revoke did. */
export interface RoleChange {
  userId: string;
  email: string;
  role: Role;
  /** `false`: nothing to do (granting a role held, revoking one not held). */
  changed: boolean;
}

/** The roles `userId` holds now, in a stable order (what an access token issued now carries). */
export async function rolesOf(executor: AuthDatabase | AuthTransaction, userId: string): Promise<Role[]> {
  const rows = await executor.select({ role: userRoles.role }).from(userRoles).where(eq(userRoles.userId, userId)).orderBy(asc(userRoles.role));
  return rows.map((row) => row.role);
}

/**
 * Grants and revokes roles by account email (the operator's command, `role-command.ts`). A change
 * shows in the account's tokens from their next issue: login, registration or refresh.
 */
export class Roles {
  constructor(private readonly db: AuthDatabase) {}

  /** Grants `role` to the account of `email`; a role already held is left as it was (`changed: false`). @throws NotFoundError `auth.user_not_found` */
  async grant(email: string, role: Role, grantedBy: string): Promise<RoleChange> {
    const user = await this.userByEmail(email);
    const inserted = await this.db.insert(userRoles).values({ userId: user.id, role, grantedBy }).onConflictDoNothing().returning({ role: userRoles.role });
    return { userId: user.id, email: user.email, role, changed: inserted.length > 0 };
  }

  /** Takes `role` from the account of `email`; a role not held is no change (`changed: false`). @throws NotFoundError `auth.user_not_found` */
  async revoke(email: string, role: Role): Promise<RoleChange> {
    const user = await this.userByEmail(email);
    const deleted = await this.db
      .delete(userRoles)
      .where(and(eq(userRoles.userId, user.id), eq(userRoles.role, role)))
      .returning({ role: userRoles.role });
    return { userId: user.id, email: user.email, role, changed: deleted.length > 0 };
  }

  /**
   * The accounts holding a role, by email; with `email`, that account whatever it holds.
   * @throws NotFoundError `auth.user_not_found` for an unknown `email`.
   */
  async list(email?: string): Promise<RoleHolder[]> {
    const holders = email
      ? [await this.userByEmail(email)]
      : await this.db
          .selectDistinct({ id: users.id, email: users.email, username: users.username })
          .from(users)
          .innerJoin(userRoles, eq(userRoles.userId, users.id))
          .orderBy(asc(users.email));
    const result: RoleHolder[] = [];
    for (const holder of holders) {
      const grants = await this.db.select().from(userRoles).where(eq(userRoles.userId, holder.id)).orderBy(asc(userRoles.role));
      result.push({
        userId: holder.id,
        email: holder.email,
        username: holder.username,
        roles: grants.map((grant) => ({ role: grant.role, grantedAt: grant.grantedAt.toISOString(), grantedBy: grant.grantedBy })),
      });
    }
    return result;
  }

  private async userByEmail(email: string): Promise<{ id: string; email: string; username: string }> {
    const normalized = email.trim().toLowerCase();
    const [user] = await this.db
      .select({ id: users.id, email: users.email, username: users.username })
      .from(users)
      .where(eq(sql`lower(${users.email})`, normalized));
    if (!user) throw new NotFoundError(`No account has the email ${normalized}`, 'auth.user_not_found');
    return user;
  }
}
