import { eq, sql } from 'drizzle-orm';
import { ConflictError, NotFoundError, PermanentError, PreconditionFailedError, isUuid } from '@civildiy/common';
import { Username, profileUpdated, type Profile, type ProfileUpdate, type UserRegistered } from '@civildiy/common/contracts';
import { isUniqueViolation, type Database, type DbTransaction } from '@civildiy/common/db';
import { outbox } from '@civildiy/common/outbox';
import { profiles } from './db/schema.ts';
import type * as schema from './db/schema.ts';

type Db = Database<typeof schema>;
type Tx = DbTransaction<typeof schema>;
type ProfileRow = typeof profiles.$inferSelect;

const USERNAME_INDEX = 'profiles_username_lower_unique';

/** What an `If-Match` asks for: a version number, or `*` (any existing profile). */
export type ExpectedVersion = number | '*';

/** The caller of an edit, from the verified token. */
export interface ProfileOwner {
  id: string;
  /** The token's username: names the profile when the edit arrives before `user.registered`. */
  username?: string | undefined;
}

/** What {@link saveOwnProfile} returns: the profile now, and whether this call changed it. */
export interface SavedProfile {
  profile: Profile;
  changed: boolean;
}

function toProfile(row: ProfileRow): Profile {
  return {
    userId: row.userId,
    username: row.username,
    displayName: row.displayName,
    bio: row.bio,
    location: row.location,
    skills: row.skills,
    avatarUrl: row.avatarUrl,
    version: row.version,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function notFound(): NotFoundError {
  return new NotFoundError('No such profile', 'profiles.not_found');
}

/** One user's profile; 404 `profiles.not_found` when there is none (yet). */
export async function getProfile(db: Db, userId: string): Promise<Profile> {
  if (!isUuid(userId)) throw notFound();
  const [row] = await db.select().from(profiles).where(eq(profiles.userId, userId));
  if (!row) throw notFound();
  return toProfile(row);
}

/** The profile whose username equals `username` ignoring case, if any. */
export async function findProfileByUsername(db: Db, username: string): Promise<Profile | undefined> {
  const [row] = await db
    .select()
    .from(profiles)
    .where(sql`lower(${profiles.username}) = lower(${username})`);
  return row ? toProfile(row) : undefined;
}

/**
 * Creates the profile of a newly registered user inside the consumer's transaction (display name =
 * username, version 1) and writes `profile.updated` to the outbox. A user who already has a profile
 * (an earlier registration event, or their own edit that arrived first) keeps it untouched.
 * Returns whether a profile was created.
 */
export async function createProfileOnRegistration(tx: Tx, user: UserRegistered): Promise<boolean> {
  try {
    const [created] = await tx
      .insert(profiles)
      .values({ userId: user.userId, username: user.username, displayName: user.username })
      .onConflictDoNothing({ target: profiles.userId })
      .returning();
    if (!created) return false;
    await outbox.event(tx, profileUpdated, toProfile(created));
    return true;
  } catch (error) {
    // Another user holds this username: retrying cannot help, so the event goes to the dead letters to be looked at.
    if (isUniqueViolation(error, USERNAME_INDEX)) {
      throw new PermanentError(`Username ${user.username} already belongs to another profile`, 'profiles.username_taken', { cause: error });
    }
    throw error;
  }
}

/**
 * Replaces the editable fields of the owner's profile (PUT semantics), in one transaction with its
 * `profile.updated` outbox row, and bumps the version. An edit that changes nothing returns the
 * profile as it is (no new version, no event). `expected` (from `If-Match`) that no longer matches
 * is a 412 `profiles.version_mismatch`. A profile not created yet (the registration event still in
 * flight) is created here from the token's username, at version 1.
 */
export async function saveOwnProfile(db: Db, owner: ProfileOwner, update: ProfileUpdate, expected?: ExpectedVersion): Promise<SavedProfile> {
  const fields = { ...update, skills: [...new Set(update.skills)] };
  try {
    return await db.transaction(async (tx) => {
      // Twice at most: an insert that loses the race to the registration event finds its row on the second look.
      for (let look = 0; look < 2; look += 1) {
        const [current] = await tx.select().from(profiles).where(eq(profiles.userId, owner.id)).for('update');
        if (current) return applyUpdate(tx, current, fields, expected);
        if (expected !== undefined) throw versionMismatch(expected, null);
        const username = Username.safeParse(owner.username);
        if (!username.success || !isUuid(owner.id)) throw notFound();
        const [created] = await tx
          .insert(profiles)
          .values({ userId: owner.id, username: username.data, ...fields })
          .onConflictDoNothing({ target: profiles.userId })
          .returning();
        if (created) {
          const profile = toProfile(created);
          await outbox.event(tx, profileUpdated, profile);
          return { profile, changed: true };
        }
      }
      throw new Error(`Profile ${owner.id} neither found nor created`);
    });
  } catch (error) {
    if (isUniqueViolation(error, USERNAME_INDEX)) {
      throw new ConflictError('This username already belongs to another profile', 'profiles.username_taken');
    }
    throw error;
  }
}

async function applyUpdate(tx: Tx, current: ProfileRow, fields: ProfileUpdate, expected: ExpectedVersion | undefined): Promise<SavedProfile> {
  if (expected !== undefined && expected !== '*' && expected !== current.version) throw versionMismatch(expected, current.version);
  if (sameFields(current, fields)) return { profile: toProfile(current), changed: false };
  const [updated] = await tx
    .update(profiles)
    .set({ ...fields, version: current.version + 1, updatedAt: new Date() })
    .where(eq(profiles.userId, current.userId))
    .returning();
  const profile = toProfile(updated!);
  await outbox.event(tx, profileUpdated, profile);
  return { profile, changed: true };
}

function sameFields(row: ProfileRow, fields: ProfileUpdate): boolean {
  return (
    row.displayName === fields.displayName &&
    row.bio === fields.bio &&
    row.location === fields.location &&
    row.avatarUrl === fields.avatarUrl &&
    row.skills.length === fields.skills.length &&
    row.skills.every((skill, i) => skill === fields.skills[i])
  );
}

function versionMismatch(expected: ExpectedVersion, currentVersion: number | null): PreconditionFailedError {
  return new PreconditionFailedError('The profile has changed since the version you sent', 'profiles.version_mismatch', {
    details: { expected, currentVersion },
  });
}
