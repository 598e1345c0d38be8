import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { expirePosts } from '@civildiy/common/contracts';
import { TaskClient, TaskWorker, unschedule } from '@civildiy/common/tasks';
import { REDIS_URL } from '@civildiy/common/testing';
import { EXPIRY_SCHEDULE_ID, handleExpiryTasks, scheduleExpiry } from '../src/handlers.ts';
import { logger, poll, startPostsService, type PostsServiceUnderTest } from './posts-service-under-test.ts';
import { skipNote, storeTargets } from './store-targets.ts';

for (const target of await storeTargets()) describe.skipIf(target.skipReason !== undefined)(`post expiry (posts.expire) on ${target.title}${skipNote(target)}`, () => {
  let service: PostsServiceUnderTest;
  let client: TaskClient;
  let worker: TaskWorker;

  beforeAll(async () => {
    service = await startPostsService(target, 'expiry');
    client = new TaskClient({ connection: REDIS_URL, prefix: service.prefix, logger });
    // Two parallel jobs, so two runs of the task really overlap.
    worker = new TaskWorker({ connection: REDIS_URL, prefix: service.prefix, queues: [expirePosts.queue], concurrency: 2, logger });
    handleExpiryTasks({ worker, store: service.store });
    await worker.start();
  });

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await service?.close();
  });

  /**
   * Publishes `n` posts of a new author, 20 at a time, each batch expiring `inMs` after it is sent
   * (so a slow machine never sends one already expired); returns their ids.
   */
  async function publishExpiring(n: number, inMs: number): Promise<{ author: string; ids: string[] }> {
    const author = newId();
    const headers = await service.as(author);
    const ids: string[] = [];
    for (let start = 0; start < n; start += 20) {
      const expiresAt = new Date(Date.now() + inMs).toISOString();
      const responses = await Promise.all(
        Array.from({ length: Math.min(20, n - start) }, (_, i) =>
          service.app.inject({ method: 'POST', url: '/posts', headers, payload: { title: `Short-lived ${start + i}`, body: 'Gone soon', expiresAt } }),
        ),
      );
      for (const response of responses) {
        expect(response.statusCode, response.body).toBe(201);
        ids.push(response.json().postId);
      }
    }
    return { author, ids };
  }

  async function hiddenFromReads(author: string): Promise<void> {
    await expect.poll(async () => (await service.app.inject({ method: 'GET', url: `/posts?author=${author}` })).json().items.length, poll).toBe(0);
  }

  /** The posts of `ids` still stored as posts (a MongoDB tombstone is not one). */
  async function storedRows(ids: string[]) {
    return service.storage.storedPosts(ids);
  }

  it('hides an expired post at once, and the task removes it with post.deleted reason expired at version + 1', async () => {
    const { author, ids } = await publishExpiring(1, 300);
    const postId = ids[0]!;
    const keeper = (await service.app.inject({ method: 'POST', url: '/posts', headers: await service.as(author), payload: { title: 'Stays', body: 'No expiry' } })).json();

    await expect.poll(async () => (await service.app.inject({ method: 'GET', url: `/posts/${postId}` })).statusCode, poll).toBe(404);
    expect((await service.app.inject({ method: 'GET', url: `/posts?author=${author}` })).json().items.map((p: { postId: string }) => p.postId)).toEqual([keeper.postId]);
    expect(await storedRows([postId])).toHaveLength(1);

    const outcome = await (await client.enqueue(expirePosts, {})).result({ timeoutMs: 15_000 });
    expect(outcome.deleted).toBeGreaterThanOrEqual(1);
    expect(await storedRows([postId])).toHaveLength(0);
    expect(await storedRows([keeper.postId])).toHaveLength(1);

    const events = await service.awaitEvents(postId, 2);
    expect(events.map((event) => [event.type, event.data.version])).toEqual([
      ['post.created', 1],
      ['post.deleted', 2],
    ]);
    expect(events[1]!.data).toMatchObject({ postId, authorId: author, reason: 'expired' });
  });

  it('two runs at the same time delete each expired post once, with exactly one post.deleted per post', async () => {
    const { author, ids } = await publishExpiring(200, 2_000);
    await hiddenFromReads(author);

    const runs = await Promise.all([client.enqueue(expirePosts, { limit: 1_000 }), client.enqueue(expirePosts, { limit: 1_000 })]);
    const outcomes = await Promise.all(runs.map((run) => run.result({ timeoutMs: 30_000 })));
    expect(outcomes[0]!.deleted + outcomes[1]!.deleted).toBe(ids.length);
    expect(await storedRows(ids)).toHaveLength(0);

    const perPost = await service.storage.deletedEventsWritten(ids);
    const wanted = new Set(ids);
    expect(perPost).toHaveLength(ids.length);
    expect(new Set(perPost.map((row) => row.postId)).size).toBe(ids.length);

    await expect.poll(() => service.received.filter((event) => event.type === 'post.deleted' && wanted.has(event.data.postId)).length, poll).toBe(ids.length);
    for (const id of ids) expect(service.eventsOf(id).map((event) => event.data.version)).toEqual([1, 2]);
  });

  it('takes at most `limit` posts per run and leaves the rest to the next one', async () => {
    const { author, ids } = await publishExpiring(5, 500);
    await hiddenFromReads(author);
    // Other tests' leftovers: none, since every earlier test drained the expired posts.
    expect((await (await client.enqueue(expirePosts, { limit: 3 })).result({ timeoutMs: 15_000 })).deleted).toBe(3);
    expect(await storedRows(ids)).toHaveLength(2);
    expect((await (await client.enqueue(expirePosts, { limit: 3 })).result({ timeoutMs: 15_000 })).deleted).toBe(2);
    expect(await storedRows(ids)).toHaveLength(0);
  });

  it('runs by itself on the registered schedule', async () => {
    await scheduleExpiry(client, 200);
    try {
      const { ids } = await publishExpiring(1, 300);
      const events = await service.awaitEvents(ids[0]!, 2);
      expect(events[1]).toMatchObject({ type: 'post.deleted', data: { reason: 'expired', version: 2 } });
      expect(await storedRows(ids)).toHaveLength(0);
    } finally {
      expect(await unschedule(client, expirePosts, EXPIRY_SCHEDULE_ID)).toBe(true);
    }
  });
});
