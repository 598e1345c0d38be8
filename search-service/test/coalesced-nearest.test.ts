import { describe, expect, it } from 'vitest';
import { CoalescedNearest } from '../src/coalesced-nearest.ts';
import type { SearchDb } from '../src/search-state.ts';

/** A database stand-in whose statements finish when the test says so. */
function controlledDb() {
  const statements: { finish: (rows: unknown[]) => void; fail: (error: Error) => void }[] = [];
  const db = {
    execute: () =>
      new Promise((resolve, reject) => {
        statements.push({ finish: (rows) => resolve({ rows }), fail: reject });
      }),
  } as unknown as SearchDb;
  return { db, statements };
}

const row = (i: number, postId: string, distance: number) => ({
  i,
  post_id: postId,
  title: postId,
  excerpt: '',
  author_id: 'a',
  author_username: null,
  tags: [],
  version: 1,
  created_at: '2026-11-22 10:00:00+00',
  distance,
});

/** A search of generation 1 (2 dimensions) unless told otherwise. */
const search = (vector: string, limit: number, generation = 1) => ({ vector, limit, generation, dimensions: vector.split(',').length });

describe('CoalescedNearest', () => {
  it('sends a search at once when the database is idle, and the ones arriving meanwhile together (at most maxBatch)', async () => {
    const { db, statements } = controlledDb();
    const sizes: number[] = [];
    const nearest = new CoalescedNearest({ db, maxBatch: 2, onBatch: (size) => sizes.push(size) });
    const first = nearest.nearest(search('[1,0]', 2));
    expect(statements).toHaveLength(1);
    const queued = [nearest.nearest(search('[0,1]', 1)), nearest.nearest(search('[1,1]', 2)), nearest.nearest(search('[0,0]', 2))];
    expect(statements).toHaveLength(1);

    statements[0]!.finish([row(1, 'p1', 0.1), row(1, 'p2', 0.2)]);
    expect((await first).map((hit) => hit.postId)).toEqual(['p1', 'p2']);
    await expect.poll(() => statements.length).toBe(2);
    // Two of the three waiting searches, each answered with its own rows and its own limit.
    statements[1]!.finish([row(1, 'p3', 0.1), row(1, 'p4', 0.3), row(2, 'p5', 0.2), row(2, 'p6', 0.4)]);
    expect((await queued[0]!).map((hit) => hit.postId)).toEqual(['p3']);
    expect((await queued[1]!).map((hit) => hit.postId)).toEqual(['p5', 'p6']);
    await expect.poll(() => statements.length).toBe(3);
    statements[2]!.finish([]);
    expect(await queued[2]!).toEqual([]);
    expect(sizes).toEqual([1, 2, 1]);
  });

  it('fails every search of a statement that fails, and answers the next ones', async () => {
    const { db, statements } = controlledDb();
    const nearest = new CoalescedNearest({ db, maxBatch: 16 });
    const running = nearest.nearest(search('[1,0]', 1));
    const together = [nearest.nearest(search('[0,1]', 1)), nearest.nearest(search('[1,1]', 1))];
    statements[0]!.finish([row(1, 'p1', 0.1)]);
    await running;
    await expect.poll(() => statements.length).toBe(2);
    statements[1]!.fail(new Error('the database is closed'));
    for (const search of together) await expect(search).rejects.toThrow('the database is closed');
    const after = nearest.nearest(search('[1,0]', 1));
    statements[2]!.finish([row(1, 'p9', 0.5)]);
    expect((await after).map((hit) => hit.postId)).toEqual(['p9']);
  });

  it('sends the searches of another generation or dimension in a statement of their own, after the oldest one’s', async () => {
    const { db, statements } = controlledDb();
    const sizes: number[] = [];
    const nearest = new CoalescedNearest({ db, maxBatch: 16, onBatch: (size) => sizes.push(size) });
    const first = nearest.nearest(search('[1,0]', 1));
    const waiting = [nearest.nearest(search('[0,1,0]', 1, 2)), nearest.nearest(search('[0,1]', 1)), nearest.nearest(search('[1,1,1]', 1, 2))];
    statements[0]!.finish([row(1, 'p1', 0.1)]);
    await first;
    await expect.poll(() => statements.length).toBe(2);
    // The oldest waiting search is of generation 2: it goes with the other one of generation 2.
    statements[1]!.finish([row(1, 'p2', 0.1), row(2, 'p3', 0.2)]);
    expect((await waiting[0]!).map((hit) => hit.postId)).toEqual(['p2']);
    expect((await waiting[2]!).map((hit) => hit.postId)).toEqual(['p3']);
    await expect.poll(() => statements.length).toBe(3);
    statements[2]!.finish([row(1, 'p4', 0.1)]);
    expect((await waiting[1]!).map((hit) => hit.postId)).toEqual(['p4']);
    expect(sizes).toEqual([1, 2, 1]);
  });
});
