import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { poll, startPostsService, type PostsServiceUnderTest } from './posts-service-under-test.ts';
import { skipNote, storeTargets } from './store-targets.ts';

const inOneHour = () => new Date(Date.now() + 60 * 60_000).toISOString();

for (const target of await storeTargets()) describe.skipIf(target.skipReason !== undefined)(`posts-service API on ${target.title}${skipNote(target)}`, () => {
  let service: PostsServiceUnderTest;

  beforeAll(async () => {
    service = await startPostsService(target, 'api');
  });

  afterAll(async () => {
    await service?.close();
  });

  async function publish(userId: string, payload: Record<string, unknown> = {}, username = 'maker') {
    const response = await service.app.inject({
      method: 'POST',
      url: '/posts',
      headers: await service.as(userId, username),
      payload: { title: 'Floating shelf', body: 'Oak, two brackets, one afternoon.', ...payload },
    });
    expect(response.statusCode).toBe(201);
    return response.json();
  }

  describe('publishing', () => {
    it('answers 201 with the post at version 1, its ETag and Location, and publishes post.created with the same snapshot', async () => {
      const author = newId();
      const response = await service.app.inject({
        method: 'POST',
        url: '/posts',
        headers: await service.as(author, 'ada'),
        payload: { title: '  Raised bed  ', body: 'Larch boards, no treatment.', tags: ['Garden', 'raised-beds', 'garden'], expiresAt: inOneHour() },
      });
      expect(response.statusCode).toBe(201);
      const post = response.json();
      expect(post).toMatchObject({ authorId: author, authorUsername: 'ada', title: 'Raised bed', tags: ['garden', 'raised-beds'], version: 1 });
      expect(post.createdAt).toBe(post.updatedAt);
      expect(response.headers.etag).toBe('"1"');
      expect(response.headers.location).toBe(`/posts/${post.postId}`);

      const [created] = await service.awaitEvents(post.postId, 1);
      expect(created).toMatchObject({ type: 'post.created', topic: 'posts-events', key: post.postId, version: 1, data: post });
    });

    it('serves a published post publicly with its version as ETag', async () => {
      const post = await publish(newId());
      const response = await service.app.inject({ method: 'GET', url: `/posts/${post.postId}` });
      expect(response.statusCode).toBe(200);
      expect(response.headers.etag).toBe('"1"');
      expect(response.json()).toEqual(post);
    });

    it.each([
      ['an empty title', { title: '   ' }],
      ['a missing body', { body: undefined }],
      ['eleven tags', { tags: Array.from({ length: 11 }, (_, i) => `tag-${i}`) }],
      ['a tag with spaces', { tags: ['wood work'] }],
      ['a one-letter tag', { tags: ['x'] }],
      ['an expiresAt that is not a date', { expiresAt: 'tomorrow' }],
      ['a title with the NUL character (found by the gateway fuzzing: it answered 500)', { title: '\u0000' }],
      ['a body with the NUL character', { body: 'glue\u0000up' }],
    ])('rejects %s with 400 validation_failed and writes neither post nor outbox row', async (_case, change) => {
      const before = await service.rowCounts();
      const response = await service.app.inject({
        method: 'POST',
        url: '/posts',
        headers: await service.as(),
        payload: { title: 'A title', body: 'A body', ...change },
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('validation_failed');
      expect(await service.rowCounts()).toEqual(before);
    });

    it('rejects an expiresAt in the past with 400 posts.expiry_in_past and writes nothing', async () => {
      const before = await service.rowCounts();
      const response = await service.app.inject({
        method: 'POST',
        url: '/posts',
        headers: await service.as(),
        payload: { title: 'Too late', body: 'Already gone', expiresAt: new Date(Date.now() - 1_000).toISOString() },
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('posts.expiry_in_past');
      expect(await service.rowCounts()).toEqual(before);
    });

    it('requires a valid access token to publish', async () => {
      const payload = { title: 'Anonymous', body: 'Should not exist' };
      const before = await service.rowCounts();
      expect((await service.app.inject({ method: 'POST', url: '/posts', payload })).statusCode).toBe(401);
      const foreign = await service.tokens.foreignToken(newId());
      const expired = await service.tokens.token(newId(), { expiresIn: Math.floor(Date.now() / 1000) - 10 });
      for (const token of [foreign, expired, 'garbage']) {
        const response = await service.app.inject({ method: 'POST', url: '/posts', headers: { authorization: `Bearer ${token}` }, payload });
        expect(response.statusCode).toBe(401);
      }
      expect(await service.rowCounts()).toEqual(before);
    });

    it('returns the first post for a repeated Idempotency-Key, and 409 when the key comes with another body', async () => {
      const author = newId();
      const headers = { ...(await service.as(author)), 'idempotency-key': `key-${newId()}` };
      const payload = { title: 'Bird house', body: 'Cedar', tags: ['birds'] };
      const first = await service.app.inject({ method: 'POST', url: '/posts', headers, payload });
      const again = await service.app.inject({ method: 'POST', url: '/posts', headers, payload });
      expect(first.statusCode).toBe(201);
      expect(again.statusCode).toBe(200);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.json()).toEqual(first.json());

      const before = await service.rowCounts();
      const other = await service.app.inject({ method: 'POST', url: '/posts', headers, payload: { ...payload, body: 'Pine' } });
      expect(other.statusCode).toBe(409);
      expect(other.json().error.code).toBe('posts.idempotency_key_reused');
      expect(await service.rowCounts()).toEqual(before);
      // The same key is the author's own: another author may use it.
      const stranger = await service.app.inject({ method: 'POST', url: '/posts', headers: { ...headers, ...(await service.as()) }, payload });
      expect(stranger.statusCode).toBe(201);

      await service.awaitEvents(first.json().postId, 1);
      const list = await service.app.inject({ method: 'GET', url: `/posts?author=${author}` });
      expect(list.json().items).toHaveLength(1);
    });

    it('creates one post when the same Idempotency-Key arrives concurrently', async () => {
      const author = newId();
      const headers = { ...(await service.as(author)), 'idempotency-key': `race-${newId()}` };
      const responses = await Promise.all(
        Array.from({ length: 6 }, () => service.app.inject({ method: 'POST', url: '/posts', headers, payload: { title: 'Stool', body: 'Three legs' } })),
      );
      expect(new Set(responses.map((r) => r.json().postId)).size).toBe(1);
      expect(responses.filter((r) => r.statusCode === 201)).toHaveLength(1);
      expect(responses.every((r) => r.statusCode === 201 || r.statusCode === 200)).toBe(true);
      const list = await service.app.inject({ method: 'GET', url: `/posts?author=${author}` });
      expect(list.json().items).toHaveLength(1);
    });

    it('rejects a malformed Idempotency-Key with 400', async () => {
      const response = await service.app.inject({
        method: 'POST',
        url: '/posts',
        headers: { ...(await service.as()), 'idempotency-key': 'has spaces' },
        payload: { title: 'A', body: 'B' },
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('validation_failed');
    });
  });

  describe('reading one post', () => {
    it('answers 404 posts.not_found for an unknown id and 400 for an id that is not a UUID', async () => {
      const missing = await service.app.inject({ method: 'GET', url: `/posts/${newId()}` });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().error.code).toBe('posts.not_found');
      const malformed = await service.app.inject({ method: 'GET', url: '/posts/not-a-uuid' });
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json().error.code).toBe('validation_failed');
    });
  });

  describe('editing', () => {
    it('applies a patch at version + 1 with a new ETag and publishes post.updated with the whole new post', async () => {
      const author = newId();
      const post = await publish(author, { tags: ['wood'], expiresAt: inOneHour() });
      const response = await service.app.inject({
        method: 'PATCH',
        url: `/posts/${post.postId}`,
        headers: { ...(await service.as(author, 'ada-renamed')), 'if-match': '"1"' },
        payload: { title: 'Floating shelf, v2', expiresAt: null },
      });
      expect(response.statusCode).toBe(200);
      expect(response.headers.etag).toBe('"2"');
      const updated = response.json();
      expect(updated).toMatchObject({
        postId: post.postId,
        title: 'Floating shelf, v2',
        body: post.body,
        tags: ['wood'],
        expiresAt: null,
        authorUsername: 'ada-renamed',
        version: 2,
        createdAt: post.createdAt,
      });
      expect(Date.parse(updated.updatedAt)).toBeGreaterThanOrEqual(Date.parse(post.updatedAt));

      const events = await service.awaitEvents(post.postId, 2);
      expect(events.map((event) => [event.type, event.data.version])).toEqual([
        ['post.created', 1],
        ['post.updated', 2],
      ]);
      expect(events[1]!.data).toEqual(updated);
      expect((await service.app.inject({ method: 'GET', url: `/posts/${post.postId}` })).json()).toEqual(updated);
    });

    it.each([
      ['a bare number', (v: number) => `${v}`],
      ['a quoted version', (v: number) => `"${v}"`],
      ['a weak ETag', (v: number) => `W/"${v}"`],
      ['a list naming the version', (v: number) => `"${v + 7}", "${v}"`],
      ['a wildcard', () => '*'],
    ])('accepts If-Match as %s', async (_case, ifMatch) => {
      const author = newId();
      const post = await publish(author);
      const response = await service.app.inject({
        method: 'PATCH',
        url: `/posts/${post.postId}`,
        headers: { ...(await service.as(author)), 'if-match': ifMatch(1) },
        payload: { body: 'Walnut instead' },
      });
      expect(response.statusCode).toBe(200);
      expect(response.json().version).toBe(2);
    });

    it('answers 412 posts.version_mismatch for a stale If-Match and changes nothing', async () => {
      const author = newId();
      const post = await publish(author);
      const headers = await service.as(author);
      await service.app.inject({ method: 'PATCH', url: `/posts/${post.postId}`, headers, payload: { body: 'Second' } });
      const before = await service.rowCounts();
      const stale = await service.app.inject({ method: 'PATCH', url: `/posts/${post.postId}`, headers: { ...headers, 'if-match': '"1"' }, payload: { body: 'Third' } });
      expect(stale.statusCode).toBe(412);
      expect(stale.json().error).toMatchObject({ code: 'posts.version_mismatch', details: { currentVersion: 2 } });
      expect(await service.rowCounts()).toEqual(before);
      expect((await service.app.inject({ method: 'GET', url: `/posts/${post.postId}` })).json()).toMatchObject({ body: 'Second', version: 2 });
    });

    it('rejects an If-Match that names no version with 400', async () => {
      const author = newId();
      const post = await publish(author);
      const response = await service.app.inject({
        method: 'PATCH',
        url: `/posts/${post.postId}`,
        headers: { ...(await service.as(author)), 'if-match': '"abc"' },
        payload: { body: 'x' },
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('posts.invalid_if_match');
    });

    it("answers 403 posts.forbidden to someone editing or deleting another author's post", async () => {
      const post = await publish(newId());
      const intruder = await service.as();
      const before = await service.rowCounts();
      const edit = await service.app.inject({ method: 'PATCH', url: `/posts/${post.postId}`, headers: intruder, payload: { title: 'Mine now' } });
      expect(edit.statusCode).toBe(403);
      expect(edit.json().error.code).toBe('posts.forbidden');
      const removal = await service.app.inject({ method: 'DELETE', url: `/posts/${post.postId}`, headers: intruder });
      expect(removal.statusCode).toBe(403);
      expect(removal.json().error.code).toBe('posts.forbidden');
      expect(await service.rowCounts()).toEqual(before);
    });

    it.each([
      ['an empty patch', {}],
      ['an empty title', { title: '' }],
      ['a bad tag', { tags: ['Not OK!'] }],
      ['eleven tags', { tags: Array.from({ length: 11 }, (_, i) => `tag-${i}`) }],
    ])('rejects %s with 400 validation_failed', async (_case, payload) => {
      const author = newId();
      const post = await publish(author);
      const response = await service.app.inject({ method: 'PATCH', url: `/posts/${post.postId}`, headers: await service.as(author), payload });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('validation_failed');
    });

    it('rejects a patch moving expiresAt into the past with 400 posts.expiry_in_past', async () => {
      const author = newId();
      const post = await publish(author);
      const response = await service.app.inject({
        method: 'PATCH',
        url: `/posts/${post.postId}`,
        headers: await service.as(author),
        payload: { expiresAt: new Date(Date.now() - 60_000).toISOString() },
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('posts.expiry_in_past');
    });

    it('answers 404 for editing or deleting an unknown post and 401 without a token', async () => {
      const headers = await service.as();
      const edit = await service.app.inject({ method: 'PATCH', url: `/posts/${newId()}`, headers, payload: { title: 'x' } });
      expect(edit.statusCode).toBe(404);
      expect(edit.json().error.code).toBe('posts.not_found');
      const removal = await service.app.inject({ method: 'DELETE', url: `/posts/${newId()}`, headers });
      expect(removal.statusCode).toBe(404);
      expect((await service.app.inject({ method: 'PATCH', url: `/posts/${newId()}`, payload: { title: 'x' } })).statusCode).toBe(401);
      expect((await service.app.inject({ method: 'DELETE', url: `/posts/${newId()}` })).statusCode).toBe(401);
    });

    it('applies concurrent patches without If-Match one after another, with distinct contiguous versions and one event each', async () => {
      const author = newId();
      const post = await publish(author);
      const headers = await service.as(author);
      const responses = await Promise.all(
        Array.from({ length: 6 }, (_, i) => service.app.inject({ method: 'PATCH', url: `/posts/${post.postId}`, headers, payload: { body: `edit ${i}` } })),
      );
      expect(responses.map((r) => r.statusCode)).toEqual(Array(6).fill(200));
      expect(responses.map((r) => r.json().version).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7]);

      const events = await service.awaitEvents(post.postId, 7);
      expect(events.map((event) => event.data.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      const last = responses.find((r) => r.json().version === 7)!.json();
      expect((await service.app.inject({ method: 'GET', url: `/posts/${post.postId}` })).json()).toEqual(last);
    });

    it('lets one of two concurrent patches with the same If-Match win and answers 412 to the other', async () => {
      const author = newId();
      const post = await publish(author);
      const headers = { ...(await service.as(author)), 'if-match': '"1"' };
      const responses = await Promise.all(
        ['left', 'right'].map((body) => service.app.inject({ method: 'PATCH', url: `/posts/${post.postId}`, headers, payload: { body } })),
      );
      expect(responses.map((r) => r.statusCode).sort()).toEqual([200, 412]);
      const winner = responses.find((r) => r.statusCode === 200)!.json();
      expect(winner.version).toBe(2);

      const events = await service.awaitEvents(post.postId, 2);
      expect(events.map((event) => [event.type, event.data.version])).toEqual([
        ['post.created', 1],
        ['post.updated', 2],
      ]);
      expect(events[1]!.data).toEqual(winner);
    });
  });

  describe('deleting', () => {
    it('deletes at version + 1 with 204, publishes post.deleted reason author, and the post is gone', async () => {
      const author = newId();
      const post = await publish(author);
      const headers = await service.as(author);
      await service.app.inject({ method: 'PATCH', url: `/posts/${post.postId}`, headers, payload: { title: 'Edited once' } });
      const response = await service.app.inject({ method: 'DELETE', url: `/posts/${post.postId}`, headers: { ...headers, 'if-match': 'W/"2"' } });
      expect(response.statusCode).toBe(204);
      expect(response.body).toBe('');

      const events = await service.awaitEvents(post.postId, 3);
      expect(events.map((event) => [event.type, event.data.version])).toEqual([
        ['post.created', 1],
        ['post.updated', 2],
        ['post.deleted', 3],
      ]);
      expect(events[2]!.data).toMatchObject({ postId: post.postId, authorId: author, reason: 'author' });

      expect((await service.app.inject({ method: 'GET', url: `/posts/${post.postId}` })).statusCode).toBe(404);
      expect((await service.app.inject({ method: 'GET', url: `/posts?author=${author}` })).json().items).toEqual([]);
      const again = await service.app.inject({ method: 'DELETE', url: `/posts/${post.postId}`, headers });
      expect(again.statusCode).toBe(404);
      expect(again.json().error.code).toBe('posts.not_found');
    });

    it('answers 412 to a delete with a stale If-Match and keeps the post', async () => {
      const author = newId();
      const post = await publish(author);
      const headers = await service.as(author);
      await service.app.inject({ method: 'PATCH', url: `/posts/${post.postId}`, headers, payload: { title: 'Edited' } });
      const response = await service.app.inject({ method: 'DELETE', url: `/posts/${post.postId}`, headers: { ...headers, 'if-match': '1' } });
      expect(response.statusCode).toBe(412);
      expect(response.json().error.code).toBe('posts.version_mismatch');
      expect((await service.app.inject({ method: 'GET', url: `/posts/${post.postId}` })).statusCode).toBe(200);
    });
  });

  describe('listing', () => {
    async function page(query: string) {
      const response = await service.app.inject({ method: 'GET', url: `/posts?${query}` });
      expect(response.statusCode).toBe(200);
      const body = response.json() as { items: { postId: string }[]; nextCursor: string | null };
      return { ids: body.items.map((item) => item.postId), nextCursor: body.nextCursor };
    }

    it('pages an author’s posts newest first and ends with nextCursor null exactly at a page boundary', async () => {
      const author = newId();
      const ids: string[] = [];
      for (let i = 0; i < 4; i += 1) ids.push((await publish(author, { title: `Post ${i}` })).postId);
      const first = await page(`author=${author}&limit=2`);
      expect(first.ids).toEqual([ids[3], ids[2]]);
      expect(first.nextCursor).toEqual(expect.any(String));
      const second = await page(`author=${author}&limit=2&cursor=${first.nextCursor}`);
      expect(second).toEqual({ ids: [ids[1], ids[0]], nextCursor: null });
      expect(await page(`author=${author}&limit=4`)).toEqual({ ids: [...ids].reverse(), nextCursor: null });
    });

    it('neither repeats nor skips a post when new ones are published between pages', async () => {
      const author = newId();
      const original: string[] = [];
      for (let i = 0; i < 5; i += 1) original.push((await publish(author)).postId);
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const result = await page(`author=${author}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        seen.push(...result.ids);
        cursor = result.nextCursor;
        pages += 1;
        await publish(author, { title: `Published while paging ${pages}` });
      } while (cursor);
      expect(seen).toEqual([...original].reverse());
      expect(pages).toBe(3);
    });

    it('pages the global list past posts published meanwhile without duplicates', async () => {
      const first = await page('limit=3');
      const newer = await publish(newId());
      const second = await page(`limit=3&cursor=${first.nextCursor}`);
      expect(second.ids).not.toContain(newer.postId);
      expect(second.ids.some((id) => first.ids.includes(id))).toBe(false);
      expect((await page('limit=1')).ids).toEqual([newer.postId]);
    });

    it('filters by tag across authors, and by author and tag together', async () => {
      const tag = `jig-${newId().slice(-8)}`;
      const alice = newId();
      const bob = newId();
      const a1 = await publish(alice, { tags: [tag, 'wood'] });
      await publish(alice, { tags: ['wood'] });
      const b1 = await publish(bob, { tags: ['metal', tag] });
      expect(await page(`tag=${tag}`)).toEqual({ ids: [b1.postId, a1.postId], nextCursor: null });
      expect(await page(`tag=${tag}&author=${alice}`)).toEqual({ ids: [a1.postId], nextCursor: null });
      const byTagPaged = await page(`tag=${tag}&limit=1`);
      expect(byTagPaged.ids).toEqual([b1.postId]);
      expect(await page(`tag=${tag}&limit=1&cursor=${byTagPaged.nextCursor}`)).toEqual({ ids: [a1.postId], nextCursor: null });
    });

    it('returns an empty page with nextCursor null when nothing matches', async () => {
      expect(await page(`author=${newId()}`)).toEqual({ ids: [], nextCursor: null });
      expect(await page(`tag=nothing-${newId().slice(-8)}`)).toEqual({ ids: [], nextCursor: null });
    });

    it.each([
      ['garbage', 'not-a-cursor!'],
      ['a raw UUID', newId()],
      ['too few bytes', Buffer.from('0123456789abcd', 'hex').toString('base64url')],
      ['non-canonical base64', `${Buffer.from(newId().replaceAll('-', ''), 'hex').toString('base64url')}=`],
      ['very long', 'A'.repeat(500)],
    ])('rejects a cursor that is %s with 400 posts.invalid_cursor', async (_case, cursor) => {
      const response = await service.app.inject({ method: 'GET', url: `/posts?cursor=${encodeURIComponent(cursor)}` });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('posts.invalid_cursor');
    });

    it.each([['limit=0'], ['limit=101'], ['limit=two'], ['limit=1.5'], ['author=not-a-uuid'], ['tag=Not%20A%20Tag']])(
      'rejects the query %s with 400 validation_failed',
      async (query) => {
        const response = await service.app.inject({ method: 'GET', url: `/posts?${query}` });
        expect(response.statusCode).toBe(400);
        expect(response.json().error.code).toBe('validation_failed');
      },
    );

    it('accepts limits 1 and 100 and defaults to 20', async () => {
      const author = newId();
      for (let i = 0; i < 21; i += 1) await publish(author);
      expect((await page(`author=${author}`)).ids).toHaveLength(20);
      expect((await page(`author=${author}&limit=1`)).ids).toHaveLength(1);
      expect(await page(`author=${author}&limit=100`)).toMatchObject({ nextCursor: null });
      expect((await page(`author=${author}&limit=100`)).ids).toHaveLength(21);
    });

    it('hides a post from the list and from reads as soon as it expires', async () => {
      const author = newId();
      const lasting = await publish(author);
      const brief = await publish(author, { expiresAt: new Date(Date.now() + 300).toISOString() });
      expect((await page(`author=${author}`)).ids).toEqual([brief.postId, lasting.postId]);
      await expect.poll(async () => (await service.app.inject({ method: 'GET', url: `/posts/${brief.postId}` })).statusCode, poll).toBe(404);
      expect((await page(`author=${author}`)).ids).toEqual([lasting.postId]);
      const edit = await service.app.inject({ method: 'PATCH', url: `/posts/${brief.postId}`, headers: await service.as(author), payload: { title: 'Revive' } });
      expect(edit.statusCode).toBe(404);
    });
  });
});
