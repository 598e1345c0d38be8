import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { count, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { type OpenDatabase } from '@civildiy/common/db';
import { DATABASE_TARGETS, openTestDatabase } from '@civildiy/common/testing';
import * as schema from '../src/db/schema.ts';
import { PgPostsStore } from '../src/pg-posts-store.ts';
import type { Post } from '../src/posts-store.ts';
import { watchOutboxCommits } from '@civildiy/common/outbox';

const migrationsFolder = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/db/migrations');

describe.each(DATABASE_TARGETS)('PgPostsStore atomicity on %s', (target) => {
  let database: OpenDatabase<typeof schema>;
  let store: PgPostsStore;
  let commits = 0;

  beforeAll(async () => {
    database = await openTestDatabase(target, { service: 'posts-service', migrationsFolder, schema });
    watchOutboxCommits(database.db, () => {
      commits += 1;
    });
    store = new PgPostsStore({ db: database.db });
  });

  afterAll(async () => {
    await database?.close();
  });

  function newPost(overrides: Partial<Post> = {}): Post {
    const now = new Date();
    return {
      id: newId(),
      authorId: newId(),
      authorUsername: 'maker',
      title: 'Workbench',
      body: 'Beech top, pine legs',
      tags: ['bench'],
      expiresAt: null,
      version: 1,
      createdAt: now,
      updatedAt: now,
      ...overrides,
    };
  }

  async function outboxRows(postId: string) {
    return database.db.select().from(schema.outboxTable).where(eq(schema.outboxTable.key, postId)).orderBy(schema.outboxTable.createdAt);
  }

  async function postRows() {
    const [row] = await database.db.select({ n: count() }).from(schema.posts);
    return row!.n;
  }

  it('a create whose event is rejected after the row was inserted leaves neither the post nor an outbox row', async () => {
    const before = await postRows();
    const commitsBefore = commits;
    // Version 0 passes the table but not the post.created contract, so the failure comes after the insert.
    const post = newPost({ version: 0 });
    await expect(store.create(post)).rejects.toThrow();
    expect(await postRows()).toBe(before);
    expect(await outboxRows(post.id)).toEqual([]);
    expect(commits).toBe(commitsBefore);
  });

  it('an update or delete at a stale version writes nothing and reports false', async () => {
    const post = newPost();
    expect(await store.create(post)).toEqual({ created: true, post });
    const next = { ...post, title: 'Edited', version: 2 };
    expect(await store.update(next, 1)).toBe(true);

    const commitsBefore = commits;
    expect(await store.update({ ...post, title: 'Stale edit', version: 2 }, 1)).toBe(false);
    const deletion = { postId: post.id, authorId: post.authorId, version: 2, reason: 'author' as const, deletedAt: new Date().toISOString() };
    expect(await store.delete(deletion, 1)).toBe(false);
    expect(commits).toBe(commitsBefore);

    expect(await store.find(post.id, new Date())).toMatchObject({ title: 'Edited', version: 2 });
    expect((await outboxRows(post.id)).map((row) => [row.name, (row.payload as { data: { version: number } }).data.version])).toEqual([
      ['post.created', 1],
      ['post.updated', 2],
    ]);
  });
});
