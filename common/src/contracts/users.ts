import { z } from 'zod';
import { defineEvent } from '../events/define.ts';

/** A username: 3–32 characters, letters, digits, `_`, `.` and `-`. */
export const Username = z.string().trim().min(3).max(32).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only');

/**
 * A role an account can hold, carried in its access tokens (`roles` claim). `operator`: the
 * operations routes (the dashboard's API, dead letters, search reindex and redrive, feed rebuilds).
 */
export const Role = z.enum(['operator']);
export type Role = z.infer<typeof Role>;

/** Data of `user.registered`. */
export const UserRegistered = z.object({
  userId: z.uuid(),
  email: z.email(),
  username: Username,
  registeredAt: z.iso.datetime({ offset: true }),
});
export type UserRegistered = z.infer<typeof UserRegistered>;

/** A user registered. Consumers: notification-service (contact copy, welcome message), profile-service. */
export const userRegistered = defineEvent({
  topic: 'users-events',
  type: 'user.registered',
  version: 1,
  data: UserRegistered,
  key: (data) => data.userId,
  description: 'A new account exists.',
});
