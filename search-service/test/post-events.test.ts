import { eq, inArray, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { postCreated } from '@civildiy/common/contracts';
import { createEnvelope } from '@civildiy/common/events';
import { startMockProviders, type MockProviders } from '@civildiy/common/testing';
import * as schema from '../src/db/schema.ts';
import { forgetTombstones } from '../src/post-events.ts';
import {
  deletion,
  edited,
  eventually,
  newPost,
  searchServer,
  serverSkipNote,
  setEmbeddingFaults,
  startSearchService,
  type SearchDatabaseTarget,
  type SearchServiceUnderTest,
} from './search-service-under-test.ts';

let providers: MockProviders;
let service: SearchServiceUnderTest;

beforeAll(async () => {
  providers = await startMockProviders();
});

afterEach(async () => {
  await setEmbeddingFaults(providers.embeddingsUrl, {});
});

afterAll(async () => {
  await providers?.stop();
});

/** A word no other post has, so each test's posts are the best match for their own titles. */
const marker = () => `project${Math.random().toString(36).slice(2, 10)}`;

const workbench = () => {
  const word = marker();
  return newPost({ title: `Sturdy ${word} workbench from pallets`, tags: ['woodworking'], body: `A sturdy ${word} workbench from reclaimed pallets with a plywood top and a bench vise.` });
};
const lamp = () => {
  const word = marker();
  return { title: `Concrete ${word} table lamp`, tags: ['lighting'], body: `Cast a concrete ${word} lamp base in a bottle mould and wire a fabric cord and socket.` };
};

/** What the index holds for a post: its vectors' versions and its buffer rows' versions and states. */
async function indexOf(postId: string) {
  const vectors = await service.db.select({ version: schema.postVectors.version }).from(schema.postVectors).where(eq(schema.postVectors.postId, postId));
  const rows = await service.db
    .select({ version: schema.indexQueue.version, status: schema.indexQueue.status })
    .from(schema.indexQueue)
    .where(eq(schema.indexQueue.postId, postId));
  return { vectors: vectors.map((row) => row.version), rows };
}

/** The version the search shows for the post as the top result of `q`, or `undefined` when it is not first. */
async function topVersion(q: string, postId: string): Promise<number | undefined> {
  const { body } = await service.get(`/search?q=${encodeURIComponent(q)}&limit=1`);
  const top = body.items[0] as { postId: string; version: number } | undefined;
  return top?.postId === postId ? top.version : undefined;
}

async function similarStatus(postId: string): Promise<number> {
  return (await service.get(`/search/similar/${postId}`)).status;
}

// The server target needs pgvector on the server: without it the suite skips, saying why (it fails under CI=true).
const server = await searchServer();

describe.each<SearchDatabaseTarget>(['PGlite', 'Postgres server with pgvector'])('post events in the index on %s', (target) => {
  if (target !== 'PGlite' && server.status === 'skip') {
    it.skip(serverSkipNote(server), () => undefined);
    return;
  }

  beforeAll(async () => {
    service = await startSearchService('post-events', { target, embeddingsUrl: providers.embeddingsUrl });
  });

  afterAll(async () => {
    await service?.close();
  });

  it('makes a new post searchable, follows its edit and drops it when it is deleted', async () => {
    const post = workbench();
    await service.created(post);
    await eventually(() => topVersion(post.title, post.postId), 1, 'created post searchable');

    const change = lamp();
    const v2 = edited(post, change);
    await service.updated(v2);
    await eventually(() => topVersion(change.title, post.postId), 2, 'edited post searchable by its new text');
    const old = await service.get(`/search?q=${encodeURIComponent(post.title)}&limit=1`);
    expect(old.body.items[0]?.title).not.toBe(post.title);
    expect(await indexOf(post.postId)).toEqual({ vectors: [2], rows: [{ version: 2, status: 'done' }] });

    await service.processed(await service.deleted(deletion(v2)));
    expect(await topVersion(change.title, post.postId)).toBeUndefined();
    expect(await similarStatus(post.postId)).toBe(404);
    expect(await indexOf(post.postId)).toEqual({ vectors: [], rows: [] });
  });

  it('keeps the newer version when an update arrives before the create', async () => {
    const post = workbench();
    const change = lamp();
    await service.processed(await service.updated(edited(post, change)));
    await service.processed(await service.created(post));
    await eventually(() => topVersion(change.title, post.postId), 2, 'the update indexed');
    expect(await indexOf(post.postId)).toEqual({ vectors: [2], rows: [{ version: 2, status: 'done' }] });
  });

  it('does not bring back a post whose delete arrives before its create', async () => {
    const post = workbench();
    await service.processed(await service.deleted(deletion(post)));
    await service.processed(await service.created(post));
    await service.processed(await service.updated(edited(post, lamp())));
    expect(await indexOf(post.postId)).toEqual({ vectors: [], rows: [] });
    expect(await similarStatus(post.postId)).toBe(404);
  });

  it('processes a redelivered event once', async () => {
    const post = workbench();
    const envelope = createEnvelope(postCreated, post);
    await service.bus.publishEnvelope(envelope);
    await service.bus.publishEnvelope(envelope);
    await service.processed(envelope.id);
    await eventually(() => topVersion(post.title, post.postId), 1, 'post searchable');
    const inbox = await service.db.select().from(schema.inboxTable).where(eq(schema.inboxTable.eventId, envelope.id));
    expect(inbox).toHaveLength(1);
  });

  it('stores the newer vector when an update arrives while the older version is being embedded', async () => {
    await setEmbeddingFaults(providers.embeddingsUrl, { latencyMs: 400 });
    const post = workbench();
    await service.created(post);
    await eventually(async () => (await indexOf(post.postId)).rows, [{ version: 1, status: 'claimed' }], 'version 1 claimed');
    const change = lamp();
    await service.processed(await service.updated(edited(post, change)));
    await eventually(async () => (await indexOf(post.postId)).rows, [{ version: 2, status: 'done' }], 'version 2 indexed');
    expect((await indexOf(post.postId)).vectors).toEqual([2]);
    expect(await topVersion(change.title, post.postId)).toBe(2);
  });

  it('stores nothing for a post deleted while it is being embedded', async () => {
    await setEmbeddingFaults(providers.embeddingsUrl, { latencyMs: 400 });
    const post = workbench();
    const before = (await service.get('/search/index/status')).body.counts.done as number;
    await service.created(post);
    await eventually(async () => (await indexOf(post.postId)).rows, [{ version: 1, status: 'claimed' }], 'version 1 claimed');
    await service.processed(await service.deleted(deletion(post)));
    // The batch finishes without storing anything: its one row is gone.
    await eventually(async () => service.batcher.inFlightCount, 0, 'no batch in flight');
    expect((await service.get('/search/index/status')).body.counts).toEqual({ pending: 0, claimed: 0, done: before, failed: 0 });
    expect(await indexOf(post.postId)).toEqual({ vectors: [], rows: [] });
  });

  it('applies a burst of events for many posts, handled together, as it applies them one by one', async () => {
    const created = Array.from({ length: 12 }, () => workbench());
    const deletedFirst = Array.from({ length: 5 }, () => workbench());
    const updatedFirst = Array.from({ length: 5 }, () => workbench());
    // Each post's events in order; the posts' events interleaved, all published at once.
    const ids = (
      await Promise.all([
        ...created.map(async (post) => [await service.created(post)]),
        ...deletedFirst.map(async (post) => [await service.deleted(deletion(post)), await service.created(post)]),
        ...updatedFirst.map(async (post) => [await service.updated(edited(post, lamp())), await service.created(post)]),
      ])
    ).flat();
    for (const id of ids) await service.processed(id);

    for (const post of created) await eventually(async () => (await indexOf(post.postId)).vectors, [1], 'created post indexed');
    for (const post of updatedFirst) await eventually(async () => (await indexOf(post.postId)).vectors, [2], 'the update indexed, its late create ignored');
    for (const post of deletedFirst) expect(await indexOf(post.postId)).toEqual({ vectors: [], rows: [] });
    const inbox = await service.db.select().from(schema.inboxTable).where(inArray(schema.inboxTable.eventId, ids));
    expect(inbox).toHaveLength(ids.length);
  });

  it('forgets tombstones past their retention and keeps the recent ones', async () => {
    const [old, recent] = [workbench(), workbench()];
    await service.processed(await service.deleted(deletion(old)));
    await service.processed(await service.deleted(deletion(recent)));
    // A tombstone keeps the delete's time; the test data's deletes are dated in 2025, so date them here.
    await service.db.update(schema.postTombstones).set({ deletedAt: sql`now() - interval '9 days'` }).where(eq(schema.postTombstones.postId, old.postId));
    await service.db.update(schema.postTombstones).set({ deletedAt: sql`now()` }).where(eq(schema.postTombstones.postId, recent.postId));

    // This is the file's last test: the earlier tests' tombstones (dated 2025) go too.
    await expect(forgetTombstones(service.db, 8 * 24 * 3_600_000)).resolves.toBeGreaterThanOrEqual(1);
    const left = await service.db.select({ postId: schema.postTombstones.postId }).from(schema.postTombstones).where(inArray(schema.postTombstones.postId, [old.postId, recent.postId]));
    expect(left).toEqual([{ postId: recent.postId }]);
  });
});
