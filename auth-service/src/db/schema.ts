import { sql } from 'drizzle-orm';
import type { Role } from '@civildiy/common/contracts';
import { check, index, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export { inboxTable, outboxTable } from '@civildiy/common/outbox';

/** Accounts. Email is stored normalised (trimmed, lower-case); username keeps its case but is unique case-insensitively. */
export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey(),
    email: text('email').notNull(),
    username: text('username').notNull(),
    /** argon2id PHC string (parameters included, so they can change over time). */
    passwordHash: text('password_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex('users_email_unique').on(sql`lower(${table.email})`),
    uniqueIndex('users_username_unique').on(sql`lower(${table.username})`),
  ],
);

/**
 * Refresh tokens, stored only as their SHA-256. Every login starts a family; each rotation adds a
 * token to it and marks the presented one rotated. Presenting a rotated token revokes the family.
 */
export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    familyId: uuid('family_id').notNull(),
    /** Hex SHA-256 of the opaque token. */
    tokenHash: text('token_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    /** Set when the token was exchanged for a new pair; a second use is a reuse. */
    rotatedAt: timestamp('rotated_at', { withTimezone: true }),
    /** Set on logout or reuse, for every token of the family. */
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (table) => [
    uniqueIndex('refresh_tokens_token_hash_unique').on(table.tokenHash),
    index('refresh_tokens_family_idx').on(table.familyId),
    index('refresh_tokens_user_idx').on(table.userId),
  ],
);

/**
 * The roles each account holds (see `Role`): one row per grant. Access tokens carry the roles found
 * here when they are issued (login, registration, refresh), so a revoke takes effect at the next refresh.
 */
export const userRoles = pgTable(
  'user_roles',
  {
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    role: text('role').$type<Role>().notNull(),
    grantedAt: timestamp('granted_at', { withTimezone: true }).notNull().defaultNow(),
    /** Who granted it: `cli:<system user>` for `npm run -w auth-service role`. */
    grantedBy: text('granted_by').notNull(),
  },
  (table) => [primaryKey({ columns: [table.userId, table.role] }), check('user_roles_role_check', sql`${table.role} in ('operator')`)],
);

export type UserRow = typeof users.$inferSelect;
export type RefreshTokenRow = typeof refreshTokens.$inferSelect;
