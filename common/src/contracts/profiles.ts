import { z } from 'zod';
import { defineEvent } from '../events/define.ts';
import { Username } from './users.ts';

/** A skill tag on a profile, e.g. `woodworking`, `tiling`. */
export const Skill = z.string().trim().toLowerCase().min(2).max(32).regex(/^[a-z0-9][a-z0-9 +#.-]*$/, 'letters, digits, space + # . -');

/** What the owner may change on a profile (`PUT /profiles/me` replaces these fields). */
export const ProfileUpdate = z.object({
  displayName: z.string().trim().min(1).max(64),
  bio: z.string().trim().max(2_000).default(''),
  location: z.string().trim().max(100).default(''),
  skills: z.array(Skill).max(20).default([]),
  /** An https (or http) URL of an image; `null` removes it. */
  avatarUrl: z.url({ protocol: /^https?$/ }).max(2_048).nullable().default(null),
});
export type ProfileUpdate = z.infer<typeof ProfileUpdate>;

/** A profile as the API returns it and `profile.updated` carries it. */
export const Profile = z.object({
  userId: z.uuid(),
  username: Username,
  displayName: z.string(),
  bio: z.string(),
  location: z.string(),
  skills: z.array(z.string()),
  avatarUrl: z.string().nullable(),
  /** Starts at 1 when the profile is created from `user.registered`; +1 on every change. */
  version: z.number().int().positive(),
  createdAt: z.iso.datetime({ offset: true }),
  updatedAt: z.iso.datetime({ offset: true }),
});
export type Profile = z.infer<typeof Profile>;

/**
 * A profile was created (version 1, display name = username) or changed. Key = user id, so one
 * user's profile events stay in order; consumers still compare `version`. Consumer: feed-service
 * (author display names).
 */
export const profileUpdated = defineEvent({
  topic: 'profiles-events',
  type: 'profile.updated',
  version: 1,
  data: Profile,
  key: (data) => data.userId,
  description: 'A profile was created or changed; carries the whole profile and its version.',
});
