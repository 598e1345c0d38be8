import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { and, asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, newId } from '@civildiy/common';
import type { Profile } from '@civildiy/common/contracts';
import { type OpenDatabase } from '@civildiy/common/db';
import type { EventEnvelope } from '@civildiy/common/events';
import type { App } from '@civildiy/common/service';
import { createTestTokens, type TestTokens, DATABASE_TARGETS, openTestDatabase } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import * as schema from '../src/db/schema.ts';
import { watchOutboxCommits } from '@civildiy/common/outbox';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');

interface TestUser {
  id: string;
  username: string;
}

function newUser(): TestUser {
  const id = newId();
  return { id, username: `Maker_${id.slice(-12)}` };
}

const edit = { displayName: 'Ada the Builder', bio: 'Shelves and stools.', location: 'Lyon', skills: ['woodworking', 'tiling'], avatarUrl: 'https://img.example.com/ada.png' };

describe.each(DATABASE_TARGETS)('profile-service API on %s', (target) => {
  let database: OpenDatabase<typeof schema>;
  let app: App;
  let tokens: TestTokens;
  let wakes = 0;

  beforeAll(async () => {
    database = await openTestDatabase(target, { service: 'profile-service', migrationsFolder, schema });
    watchOutboxCommits(database.db, () => {
      wakes += 1;
    });
    tokens = await createTestTokens();
    app = await buildApp({
      db: database.db,
      logger: createLogger({ service: 'profile-service', level: 'silent' }),
      auth: tokens.keys,
      readiness: { database: () => database.ping() },
      logRequests: false,
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await database?.close();
  });

  async function as(user: TestUser) {
    return { authorization: `Bearer ${await tokens.token(user.id, { username: user.username })}` };
  }

  async function put(user: TestUser, payload: unknown, headers: Record<string, string> = {}, url = '/profiles/me') {
    return app.inject({ method: 'PUT', url, headers: { ...(await as(user)), ...headers }, payload: payload as object });
  }

  async function publicProfile(userId: string) {
    return app.inject({ method: 'GET', url: `/profiles/${userId}` });
  }

  /** The `profile.updated` envelopes written to the outbox for a user, oldest first. */
  async function profileEvents(userId: string): Promise<EventEnvelope<Profile>[]> {
    const rows = await database.db
      .select()
      .from(schema.outboxTable)
      .where(and(eq(schema.outboxTable.name, 'profile.updated'), eq(schema.outboxTable.key, userId)))
      .orderBy(asc(schema.outboxTable.createdAt));
    return rows.map((row) => row.payload as EventEnvelope<Profile>);
  }

  it('answers 404 profiles.not_found for my profile before it exists', async () => {
    const response = await app.inject({ method: 'GET', url: '/profiles/me', headers: await as(newUser()) });
    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe('profiles.not_found');
  });

  it("creates the profile on a first edit, named after the token's username, at version 1 with profile.updated in the outbox", async () => {
    const user = newUser();
    const before = wakes;
    const response = await put(user, edit);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ userId: user.id, username: user.username, ...edit, version: 1 });
    expect(response.headers.etag).toBe('"1"');
    expect(wakes).toBe(before + 1);

    const events = await profileEvents(user.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'profile.updated', topic: 'profiles-events', key: user.id, data: { userId: user.id, version: 1, displayName: edit.displayName } });
    const mine = await app.inject({ method: 'GET', url: '/profiles/me', headers: await as(user) });
    expect(mine.json()).toEqual(response.json());
    expect(mine.headers.etag).toBe('"1"');
  });

  it('increments the version on every change, with one profile.updated each and an ETag equal to the version', async () => {
    const user = newUser();
    await put(user, edit);
    const second = await put(user, { ...edit, bio: 'Now also lamps.' });
    const third = await put(user, { ...edit, bio: 'Now also lamps.', skills: ['electrics'] });
    expect([second.json().version, third.json().version]).toEqual([2, 3]);
    expect(third.headers.etag).toBe('"3"');
    expect(new Date(third.json().updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(second.json().updatedAt).getTime());
    expect(third.json().createdAt).toBe(second.json().createdAt);

    const read = await publicProfile(user.id);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({ version: 3, skills: ['electrics'], bio: 'Now also lamps.' });
    expect(read.headers.etag).toBe('"3"');
    expect((await profileEvents(user.id)).map((event) => event.data.version)).toEqual([1, 2, 3]);
  });

  it('keeps the version and writes no event when an edit changes nothing', async () => {
    const user = newUser();
    const first = await put(user, edit);
    const before = wakes;
    // The same values after trimming, lower-casing skills and dropping a repeated skill.
    const same = await put(user, { ...edit, displayName: `  ${edit.displayName} `, skills: ['Woodworking', 'tiling', 'woodworking'] });
    expect(same.statusCode).toBe(200);
    expect(same.json()).toEqual(first.json());
    expect(same.headers.etag).toBe('"1"');
    expect(wakes).toBe(before);
    expect(await profileEvents(user.id)).toHaveLength(1);
  });

  it('replaces the editable fields: optional fields left out are reset', async () => {
    const user = newUser();
    await put(user, edit);
    const response = await put(user, { displayName: 'Ada' });
    expect(response.json()).toMatchObject({ displayName: 'Ada', bio: '', location: '', skills: [], avatarUrl: null, version: 2, username: user.username });
  });

  it('applies an edit whose If-Match is the current version, as a number, an entity tag or *', async () => {
    const user = newUser();
    await put(user, edit);
    const plain = await put(user, { ...edit, bio: 'a' }, { 'if-match': '1' });
    const tagged = await put(user, { ...edit, bio: 'b' }, { 'if-match': '"2"' });
    const any = await put(user, { ...edit, bio: 'c' }, { 'if-match': '*' });
    expect([plain.statusCode, tagged.statusCode, any.statusCode]).toEqual([200, 200, 200]);
    expect(any.json()).toMatchObject({ bio: 'c', version: 4 });
  });

  it('refuses an edit with a stale If-Match with 412 profiles.version_mismatch and leaves the profile as it was', async () => {
    const user = newUser();
    await put(user, edit);
    await put(user, { ...edit, bio: 'second' });
    const stale = await put(user, { ...edit, bio: 'lost update' }, { 'if-match': '"1"' });
    expect(stale.statusCode).toBe(412);
    expect(stale.json().error).toMatchObject({ code: 'profiles.version_mismatch', details: { expected: 1, currentVersion: 2 } });
    expect((await publicProfile(user.id)).json()).toMatchObject({ bio: 'second', version: 2 });
    expect(await profileEvents(user.id)).toHaveLength(2);
  });

  it('refuses an If-Match edit of a profile that does not exist yet with 412', async () => {
    const user = newUser();
    const response = await put(user, edit, { 'if-match': '"1"' });
    expect(response.statusCode).toBe(412);
    expect(response.json().error.code).toBe('profiles.version_mismatch');
    expect((await publicProfile(user.id)).statusCode).toBe(404);
  });

  it('lets exactly one of several concurrent edits with the same If-Match win', async () => {
    const user = newUser();
    await put(user, edit);
    const responses = await Promise.all(Array.from({ length: 6 }, (_, i) => put(user, { ...edit, bio: `racer ${i}` }, { 'if-match': '"1"' })));
    const statuses = responses.map((response) => response.statusCode).sort();
    expect(statuses).toEqual([200, 412, 412, 412, 412, 412]);
    const winner = responses.find((response) => response.statusCode === 200)!.json();
    expect((await publicProfile(user.id)).json()).toMatchObject({ bio: winner.bio, version: 2 });
  });

  it('rejects a malformed If-Match with 400', async () => {
    const user = newUser();
    await put(user, edit);
    for (const value of ['"1', 'W/"1"', 'one', '-1']) {
      const response = await put(user, { ...edit, bio: 'x' }, { 'if-match': value });
      expect(response.statusCode, value).toBe(400);
      expect(response.json().error.code).toBe('validation_failed');
    }
  });

  it.each([
    ['a display name over 64 characters', { ...edit, displayName: 'x'.repeat(65) }],
    ['an empty display name', { ...edit, displayName: '   ' }],
    ['no display name', { bio: 'only a bio' }],
    ['a bio over 2,000 characters', { ...edit, bio: 'x'.repeat(2_001) }],
    ['a location over 100 characters', { ...edit, location: 'x'.repeat(101) }],
    ['a javascript: avatar URL', { ...edit, avatarUrl: 'javascript:alert(1)' }],
    ['a data: avatar URL', { ...edit, avatarUrl: 'data:image/png;base64,AAAA' }],
    ['an ftp avatar URL', { ...edit, avatarUrl: 'ftp://example.com/a.png' }],
    ['an avatar that is not a URL', { ...edit, avatarUrl: 'me.png' }],
    ['more than 20 skills', { ...edit, skills: Array.from({ length: 21 }, (_, i) => `skill-${i}`) }],
    ['a skill with forbidden characters', { ...edit, skills: ['<script>'] }],
    ['a one-letter skill', { ...edit, skills: ['a'] }],
    ['a skill over 32 characters', { ...edit, skills: ['x'.repeat(33)] }],
    ['skills that are not a list', { ...edit, skills: 'woodworking' }],
    ['a display name that is not a string', { ...edit, displayName: 42 }],
  ])('rejects %s with 400 validation_failed and changes nothing', async (_case, payload) => {
    const user = newUser();
    await put(user, edit);
    const response = await put(user, payload);
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('validation_failed');
    expect((await publicProfile(user.id)).json()).toMatchObject({ ...edit, version: 1 });
  });

  it('requires a valid token to read or edit my profile', async () => {
    const user = newUser();
    await put(user, edit);
    const expired = await tokens.token(user.id, { username: user.username, expiresIn: Math.floor(Date.now() / 1000) - 10 });
    const foreign = await tokens.foreignToken(user.id);
    const requests = [
      { method: 'GET' as const, url: '/profiles/me' },
      { method: 'PUT' as const, url: '/profiles/me', payload: { ...edit, bio: 'intruder' } },
      { method: 'PUT' as const, url: `/profiles/${user.id}`, payload: { ...edit, bio: 'intruder' } },
    ];
    for (const request of requests) {
      const anonymous = await app.inject(request);
      expect(anonymous.statusCode).toBe(401);
      expect(anonymous.json().error.code).toBe('auth.missing_token');
      for (const token of [expired, foreign, 'garbage']) {
        const response = await app.inject({ ...request, headers: { authorization: `Bearer ${token}` } });
        expect(response.statusCode, `${request.method} ${request.url} with ${token.slice(0, 12)}`).toBe(401);
      }
    }
    expect((await publicProfile(user.id)).json()).toMatchObject({ bio: edit.bio, version: 1 });
  });

  it("refuses to edit another user's profile with 403 profiles.forbidden", async () => {
    const owner = newUser();
    const intruder = newUser();
    await put(owner, edit);
    const response = await put(intruder, { ...edit, displayName: 'Hacked' }, {}, `/profiles/${owner.id}`);
    expect(response.statusCode).toBe(403);
    expect(response.json().error.code).toBe('profiles.forbidden');
    expect((await publicProfile(owner.id)).json()).toMatchObject({ displayName: edit.displayName, version: 1 });
    expect((await publicProfile(intruder.id)).statusCode).toBe(404);
  });

  it('edits my own profile through PUT /profiles/{my id} like PUT /profiles/me', async () => {
    const user = newUser();
    await put(user, edit);
    const response = await put(user, { ...edit, location: 'Nantes' }, { 'if-match': '"1"' }, `/profiles/${user.id}`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ location: 'Nantes', version: 2 });
    expect(response.headers.etag).toBe('"2"');
  });

  it('answers 404 for an unknown user id and 400 for one that is not a uuid', async () => {
    const unknown = await publicProfile(newId());
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('profiles.not_found');
    for (const request of [
      { method: 'GET' as const, url: '/profiles/not-a-uuid' },
      { method: 'PUT' as const, url: '/profiles/not-a-uuid', headers: await as(newUser()), payload: edit },
    ]) {
      const response = await app.inject(request);
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('validation_failed');
    }
  });

  it('finds a profile by username, ignoring case', async () => {
    const user = newUser();
    await put(user, edit);
    for (const username of [user.username, user.username.toLowerCase(), user.username.toUpperCase()]) {
      const response = await app.inject({ method: 'GET', url: `/profiles?username=${encodeURIComponent(username)}` });
      expect(response.statusCode).toBe(200);
      expect(response.json().items).toEqual([expect.objectContaining({ userId: user.id, username: user.username })]);
    }
    const none = await app.inject({ method: 'GET', url: `/profiles?username=nobody_${newId().slice(-8)}` });
    expect(none.json()).toEqual({ items: [] });
  });

  it.each([
    ['no username', '/profiles'],
    ['an empty username', '/profiles?username='],
    ['a username with a space', '/profiles?username=a%20b%20c'],
    ['a username too short', '/profiles?username=ab'],
    ['a LIKE pattern', '/profiles?username=%25%25%25'],
  ])('rejects a lookup with %s with 400', async (_case, url) => {
    const response = await app.inject({ method: 'GET', url });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('validation_failed');
  });

  it('refuses with 409 a first edit whose username another profile holds in another case', async () => {
    const holder = newUser();
    await put(holder, edit);
    const other = { id: newId(), username: holder.username.toLowerCase() };
    const response = await put(other, edit);
    expect(response.statusCode).toBe(409);
    expect(response.json().error.code).toBe('profiles.username_taken');
    expect((await publicProfile(other.id)).statusCode).toBe(404);
  });

  it('answers 404 to a first edit when the token carries no usable username', async () => {
    const user = { id: newId(), username: '!' };
    const response = await put(user, edit);
    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe('profiles.not_found');
  });
});
