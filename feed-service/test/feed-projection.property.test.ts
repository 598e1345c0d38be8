import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import type { PostDeleted, PostSnapshot, Profile } from '@civildiy/common/contracts';
import { Redis } from '@civildiy/common/redis';
import { REDIS_URL, uniquePrefix } from '@civildiy/common/testing';
import { FeedGenerations } from '../src/feed-generations.ts';
import { FeedProjection } from '../src/feed-projection.ts';
import { FeedReader } from '../src/feed-reader.ts';
import { deletion, edited, newPost, profile } from './post-history.ts';

type FeedChange = { kind: 'post'; data: PostSnapshot } | { kind: 'delete'; data: PostDeleted } | { kind: 'profile'; data: Profile };

let redis: Redis;

beforeAll(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
});

afterAll(async () => {
  await redis?.quit();
});

/** A post's whole history in version order: its create, `edits` updates, and maybe its delete. */
function postHistory(authorId: string, minute: number, edits: number, deleted: boolean): FeedChange[] {
  const history: FeedChange[] = [];
  let post = newPost({ authorId, minute, authorUsername: `user-${authorId.slice(-4)}` });
  history.push({ kind: 'post', data: post });
  for (let i = 0; i < edits; i++) {
    post = edited(post, { body: `Edit ${i} of the build log.` });
    history.push({ kind: 'post', data: post });
  }
  if (deleted) history.push({ kind: 'delete', data: deletion(post) });
  return history;
}

const postArbitrary = fc.record({
  author: fc.integer({ min: 0, max: 1 }),
  // Several posts may share a minute: ties are ordered by post id.
  minute: fc.integer({ min: 0, max: 3 }),
  edits: fc.integer({ min: 0, max: 4 }),
  deleted: fc.boolean(),
});

/** The histories, and a delivery: every event at least once, some several times, in any order. */
const scenario = fc
  .record({
    posts: fc.array(postArbitrary, { minLength: 1, maxLength: 4 }),
    profileVersions: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })),
    repeats: fc.array(fc.nat(), { maxLength: 12 }),
    seed: fc.integer(),
  })
  .chain((input) => {
    const authors = [newId(), newId()];
    const changes: FeedChange[] = [];
    for (const [index, versions] of input.profileVersions.entries()) {
      for (let version = 1; version <= versions; version++) changes.push({ kind: 'profile', data: profile(authors[index]!, version, `Builder ${index} v${version}`) });
    }
    for (const post of input.posts) changes.push(...postHistory(authors[post.author]!, post.minute, post.edits, post.deleted));
    const delivered = [...changes, ...input.repeats.map((n) => changes[n % changes.length]!)];
    return fc.shuffledSubarray(delivered, { minLength: delivered.length, maxLength: delivered.length }).map((delivery) => ({ changes, delivery }));
  });

/** Applies `changes` one by one under a fresh prefix; reads the result, then deletes it (the only keys written). */
async function project(changes: FeedChange[]): Promise<{ dump: unknown; pages: unknown }> {
  const prefix = uniquePrefix('feed-property');
  const projection = new FeedProjection({ redis, prefix });
  for (const change of changes) {
    if (change.kind === 'post') await projection.applyPost(change.data);
    else if (change.kind === 'delete') await projection.applyDelete(change.data);
    else await projection.applyProfile(change.data);
  }
  const generations = new FeedGenerations(redis, prefix);
  const reader = new FeedReader(redis, prefix);
  const dump = await generations.dump(1);
  const pages = await reader.page({ limit: 100 });
  await generations.drop(1);
  return { dump, pages };
}

describe('feed projection under at-least-once, unordered delivery', () => {
  it('ends in the same read model as applying every event once, in order, for any shuffle with duplicates', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ changes, delivery }) => {
        const inOrder = await project(changes);
        const shuffled = await project(delivery);
        expect(shuffled.dump).toEqual(inOrder.dump);
        expect(shuffled.pages).toEqual(inOrder.pages);
      }),
      { numRuns: 150 },
    );
  });
});
