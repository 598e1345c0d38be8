import { sql } from 'drizzle-orm';
import { integer, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export { inboxTable, outboxTable } from '@civildiy/common/outbox/schema';

/** One profile per user, created from `user.registered` (or by the user's first edit, if that comes first). */
export const profiles = pgTable(
  'profiles',
  {
    userId: uuid('user_id').primaryKey(),
    /** The account's username as auth-service registered it (case kept; unique case-insensitively). */
    username: text('username').notNull(),
    displayName: text('display_name').notNull(),
    bio: text('bio').notNull().default(''),
    location: text('location').notNull().default(''),
    skills: text('skills').array().notNull().default(sql`'{}'::text[]`),
    avatarUrl: text('avatar_url'),
    /** 1 when created, +1 on every change; the `ETag` and the version `profile.updated` carries. */
    version: integer('version').notNull().default(1),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [uniqueIndex('profiles_username_lower_unique').on(sql`lower(${table.username})`)],
);
