import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoTestServer, mongoTestServerToolingMissing } from '@civildiy/common/testing';
import { caddySkipReason, caddyVersion, startCaddy, type RunningCaddy } from './caddy.ts';
import { UNLIMITED_GATEWAY, call, registerUser, startSystem, type System } from './system.ts';

const poll = { timeout: 60_000, interval: 100 };

const toolingMissing = await mongoTestServerToolingMissing();
const caddySkip = caddySkipReason(caddyVersion());
if (toolingMissing !== undefined && process.env.CI === 'true') throw new Error(`The MongoDB test server cannot run under CI: ${toolingMissing}`);

interface FeedItem {
  postId: string;
  title: string;
  version: number;
}

/**
 * Flows 5.2 and 5.3 with posts-service on MongoDB (`POSTS_STORE=mongodb`), real processes, every
 * call through the gateway: a post, its edit and its delete reach the feeds and the search index
 * through the Mongo store's outbox (events kept in each post document, published by its relay).
 * mongo-java-server stands in for MongoDB (in memory, started for this file); posts-service's
 * `POSTS_DATABASE_URL` points at nothing, so the flow works only if it opens no Postgres database.
 * The flow runs twice: through the gateway, and through Debian's Caddy with the Caddyfile generated
 * from the route table (forward_auth to auth-service's /auth/verify, as Traefik does in Compose).
 */
describe.skipIf(toolingMissing !== undefined)(
  `post → feed → search with POSTS_STORE=mongodb (mongo-java-server), real processes${toolingMissing ? ` (skipped: ${toolingMissing})` : ''}`,
  () => {
    let mongo: MongoTestServer;
    let system: System;
    let caddy: RunningCaddy | undefined;

    beforeAll(async () => {
      mongo = await MongoTestServer.start();
      system = await startSystem({
        services: ['mock-providers', 'auth-service', 'profile-service', 'posts-service', 'feed-service', 'search-service', 'worker', 'gateway'],
        env: {
          ...UNLIMITED_GATEWAY,
          POSTS_STORE: 'mongodb',
          POSTS_MONGODB_URL: `${mongo.url}/posts`,
          // Nothing listens there: posts-service must not open it.
          POSTS_DATABASE_URL: 'postgres://nobody@127.0.0.1:1/unused',
        },
      });
      if (caddySkip === undefined) {
        const upstreams: Record<string, string> = {
          'auth-service': system.urls.auth,
          'profile-service': system.urls.profiles,
          'posts-service': system.urls.posts,
          'feed-service': system.urls.feed,
          'search-service': system.urls.search,
        };
        caddy = await startCaddy((service) => upstreams[service] ?? system.urls.gateway);
      }
    }, 180_000);

    afterAll(async () => {
      await caddy?.stop();
      await system?.stop();
      await mongo?.stop();
    });

    /** The flow through `gateway` (the edge: the Node gateway or Caddy), as a new user. */
    async function postFeedSearchFlow(gateway: string, name: string) {
      const user = await registerUser(gateway, name);
      const token = user.token;
      const userId = user.id;

      async function feedItem(path: string, postId: string): Promise<FeedItem | undefined> {
        const response = await call(`${gateway}${path}`);
        expect(response.status, JSON.stringify(response.body)).toBe(200);
        return (response.body.items as FeedItem[]).find((item) => item.postId === postId);
      }

      async function topResults(q: string) {
        const response = await call(`${gateway}/search?q=${encodeURIComponent(q)}&limit=5`);
        expect(response.status, JSON.stringify(response.body)).toBe(200);
        return response.body.items as { postId: string; version: number }[];
      }

      async function publish(title: string, body: string, tags: string[]): Promise<string> {
        const response = await call(`${gateway}/posts`, { token, body: { title, body, tags } });
        expect(response.status, JSON.stringify(response.body)).toBe(201);
        return response.body.postId as string;
      }

      const ready = await call(`${system.urls.posts}/health/ready`);
      expect(ready.status, JSON.stringify(ready.body)).toBe(200);
      expect(ready.body.checks.database).toMatchObject({ status: 'up' });

      const bed = await publish('Cedar raised garden bed', 'Cedar boards, corner posts and a layer of compost for the vegetable garden.', ['garden']);
      const lamp = await publish('Rewiring a ceiling lamp', 'Turn off the breaker, test the wires, connect the fixture and the switch.', ['electrical']);
      expect((await call(`${gateway}/posts?author=${userId}`)).body.items.map((item: { postId: string }) => item.postId)).toEqual([lamp, bed]);

      await expect.poll(async () => (await feedItem('/feed', bed))?.title, poll).toBe('Cedar raised garden bed');
      await expect.poll(async () => (await feedItem(`/feed/users/${userId}`, lamp))?.version, poll).toBe(1);
      await expect.poll(async () => (await topResults('raised bed for vegetables from cedar'))[0]?.postId, poll).toBe(bed);

      const edited = await call(`${gateway}/posts/${lamp}`, {
        method: 'PATCH',
        token,
        headers: { 'if-match': '"1"' },
        body: { title: 'Tiling a bathroom floor', body: 'Porcelain tiles, spacers, mortar and grout on the bathroom floor.', tags: ['tiling'] },
      });
      expect(edited.status, JSON.stringify(edited.body)).toBe(200);
      await expect.poll(async () => (await feedItem('/feed', lamp))?.title, poll).toBe('Tiling a bathroom floor');
      await expect.poll(async () => (await topResults('porcelain tiles on a bathroom floor'))[0], poll).toMatchObject({ postId: lamp, version: 2 });

      const deleted = await call(`${gateway}/posts/${bed}`, { method: 'DELETE', token });
      expect(deleted.status).toBe(204);
      expect((await call(`${gateway}/posts/${bed}`)).status).toBe(404);
      await expect.poll(async () => (await feedItem('/feed', bed)) === undefined, poll).toBe(true);
      await expect.poll(async () => (await feedItem(`/feed/users/${userId}`, bed)) === undefined, poll).toBe(true);
      await expect.poll(async () => (await topResults('raised bed for vegetables from cedar')).some((item) => item.postId === bed), poll).toBe(false);

      // Leaves nothing behind for the next run of the flow, whose posts carry the same texts.
      expect((await call(`${gateway}/posts/${lamp}`, { method: 'DELETE', token })).status).toBe(204);
      await expect.poll(async () => (await topResults('porcelain tiles on a bathroom floor')).some((item) => item.postId === lamp), poll).toBe(false);
    }

    it('shows a post in the feeds and the search through the gateway, follows its edit, and forgets it when deleted', async () => {
      await postFeedSearchFlow(system.urls.gateway, 'mongo');
    });

    it.skipIf(caddySkip !== undefined)(`does the same through Caddy's forward auth (the /auth/verify contract Traefik relies on)${caddySkip ? ` (${caddySkip})` : ''}`, async () => {
      await postFeedSearchFlow(caddy!.url, 'mongo-edge');
      const anonymous = await call(`${caddy!.url}/posts`, { body: { title: 'No token', body: 'Refused at the edge.', tags: [] } });
      expect(anonymous.status).toBe(401);
    });
  },
);
