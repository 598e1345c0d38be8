import { ConflictError, NotFoundError, UnauthorizedError, newId } from '@civildiy/common';
import { userRegistered, type Role } from '@civildiy/common/contracts';
import { isUniqueViolation } from '@civildiy/common/db';
import { outbox } from '@civildiy/common/outbox';
import { eq, or, sql } from 'drizzle-orm';
import type { AuthDatabase } from './db/database.ts';
import { users, type UserRow } from './db/schema.ts';
import type { DeviceTokens } from './device-tokens.ts';
import type { LoginThrottle } from './login-throttle.ts';
import type { Passwords } from './passwords.ts';
import { rolesOf } from './roles.ts';
import type { IssuedTokens, Tokens } from './tokens.ts';

/** A user as clients see it. */
export interface PublicUser {
  id: string;
  email: string;
  username: string;
  createdAt: string;
  /** The roles the account holds now (its access tokens carry them from their issue on). */
  roles: Role[];
}

/** A user with fresh tokens (registration, login). */
export interface Session extends IssuedTokens {
  user: PublicUser;
}

/** Options of {@link Accounts}. */
export interface AccountsOptions {
  db: AuthDatabase;
  passwords: Passwords;
  tokens: Tokens;
  /** Checks the device token a login presents. */
  devices: DeviceTokens;
  throttle: LoginThrottle;
}

const toPublicUser = (row: UserRow, roles: Role[]): PublicUser => ({ id: row.id, email: row.email, username: row.username, createdAt: row.createdAt.toISOString(), roles });

const invalidCredentials = () => new UnauthorizedError('The login or the password is wrong', 'auth.invalid_credentials');

/** Registration, login and lookup of accounts. */
export class Accounts {
  constructor(private readonly options: AccountsOptions) {}

  /**
   * Creates an account and its first session. The user row, its `user.registered` outbox row and the
   * refresh token commit together or not at all. Email and username are unique case-insensitively;
   * the unique indexes decide, so two concurrent registrations of one name give one 409.
   * @param input.email already trimmed and lower-cased.
   */
  async register(input: { email: string; username: string; password: string }): Promise<Session> {
    const passwordHash = await this.options.passwords.hash(input.password);
    try {
      return await this.options.db.transaction(async (tx) => {
        const [row] = await tx
          .insert(users)
          .values({ id: newId(), email: input.email, username: input.username, passwordHash })
          .returning();
        const user = row!;
        await outbox.event(tx, userRegistered, {
          userId: user.id,
          email: user.email,
          username: user.username,
          registeredAt: user.createdAt.toISOString(),
        });
        return { user: toPublicUser(user, []), ...(await this.options.tokens.issue(tx, user)) };
      });
    } catch (error) {
      if (isUniqueViolation(error, 'users_email_unique')) throw new ConflictError('This email is already registered', 'auth.email_taken');
      if (isUniqueViolation(error, 'users_username_unique')) throw new ConflictError('This username is taken', 'auth.username_taken');
      throw error;
    }
  }

  /**
   * Logs in by email or username. An unknown login and a wrong password give the same 401 after the
   * same work. With a valid device token of this account, failures are throttled per device only;
   * without one, per client address and per login (see {@link LoginThrottle}; 429 when over).
   */
  async login(input: { login: string; password: string; deviceToken?: string | undefined }, address: string): Promise<Session> {
    const { passwords, throttle } = this.options;
    const user = await this.findByLogin(input.login);
    const device = await this.options.devices.verify(input.deviceToken, user?.id);
    const attempt = await throttle.admit(device ? { device } : { login: input.login, address });
    const valid = user ? await passwords.verify(user.passwordHash, input.password) : await passwords.verifyAgainstDummy(input.password);
    if (!user || !valid) throw invalidCredentials();
    await attempt.succeeded();
    if (passwords.needsRehash(user.passwordHash)) {
      // The cost parameters were raised since this hash was made: upgrade it while the password is at hand.
      await this.options.db
        .update(users)
        .set({ passwordHash: await passwords.hash(input.password), updatedAt: new Date() })
        .where(eq(users.id, user.id));
    }
    return { user: toPublicUser(user, await rolesOf(this.options.db, user.id)), ...(await this.options.tokens.issue(this.options.db, user)) };
  }

  /** The user with `id`. @throws NotFoundError `auth.user_not_found` */
  async get(id: string): Promise<PublicUser> {
    const [row] = await this.options.db.select().from(users).where(eq(users.id, id));
    if (!row) throw new NotFoundError('No such user', 'auth.user_not_found');
    return toPublicUser(row, await rolesOf(this.options.db, row.id));
  }

  private async findByLogin(login: string): Promise<UserRow | undefined> {
    const normalized = login.trim().toLowerCase();
    const [row] = await this.options.db
      .select()
      .from(users)
      .where(or(eq(sql`lower(${users.email})`, normalized), eq(sql`lower(${users.username})`, normalized)))
      .limit(1);
    return row;
  }
}
