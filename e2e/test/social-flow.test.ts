import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOCIAL_SERVICES } from '@civildiy/common/testing';
import { eventBuses } from './event-buses.ts';
import { PASSWORD, UNLIMITED_GATEWAY, call, registerUser, startSystem, type System } from './system.ts';

const poll = { timeout: 30_000, interval: 50 };

interface FeedItem {
  postId: string;
  authorId: string;
  authorDisplayName: string;
  title: string;
  version: number;
}

/**
 * Flow 5.2 with real processes, every call through the gateway: register → login → profile →
 * post → feeds → edit → rename → delete, and a feed-service killed mid-stream; run once with the
 * events on Redis Streams and once on Kafka.
 */
for (const bus of await eventBuses()) describe.skipIf(bus.skipReason !== undefined)(`post → feed flow through the gateway, real processes, events on ${bus.title}`, () => {
  let system: System;
  let gateway: string;

  beforeAll(async () => {
    system = await startSystem({
      services: SOCIAL_SERVICES,
      env: { ...UNLIMITED_GATEWAY, ...bus.env() },
    });
    gateway = system.urls.gateway;
  }, 180_000);

  afterAll(async () => {
    await system?.stop();
  });

  async function registerAndLogin() {
    const user = await registerUser(gateway);
    const login = await call(`${gateway}/auth/login`, { body: { login: user.username, password: PASSWORD } });
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    return { id: user.id, username: user.username, token: login.body.accessToken as string };
  }

  async function feedItems(path: string): Promise<FeedItem[]> {
    const response = await call(`${gateway}${path}`);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body.items as FeedItem[];
  }

  /** Every item of a feed, following the cursor. */
  async function wholeFeed(path: string): Promise<FeedItem[]> {
    const items: FeedItem[] = [];
    let cursor: string | null = null;
    do {
      const separator = path.includes('?') ? '&' : '?';
      const response = await call(`${gateway}${path}${separator}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      items.push(...(response.body.items as FeedItem[]));
      cursor = response.body.nextCursor as string | null;
    } while (cursor);
    return items;
  }

  const itemOf = async (path: string, postId: string) => (await feedItems(path)).find((item) => item.postId === postId);

  it('shows a post, its edit, its author’s new name and its deletion in both feeds', async () => {
    const user = await registerAndLogin();

    // The profile is created from user.registered.
    await expect.poll(async () => (await call(`${gateway}/profiles/me`, { token: user.token })).status, poll).toBe(200);
    const profile = await call(`${gateway}/profiles/me`, { token: user.token });
    expect(profile.body).toMatchObject({ userId: user.id, username: user.username, displayName: user.username });

    const created = await call(`${gateway}/posts`, {
      token: user.token,
      body: { title: 'A workbench from one sheet of plywood', body: 'Cut list, glue-up and finish.', tags: ['woodworking'] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const postId = created.body.postId as string;

    await expect.poll(async () => (await itemOf('/feed', postId))?.title, poll).toBe('A workbench from one sheet of plywood');
    await expect.poll(async () => (await itemOf(`/feed/users/${user.id}`, postId))?.version, poll).toBe(1);
    expect((await itemOf('/feed', postId))?.authorDisplayName).toBe(user.username);

    const edited = await call(`${gateway}/posts/${postId}`, { method: 'PATCH', token: user.token, headers: { 'if-match': '"1"' }, body: { title: 'A workbench, revised' } });
    expect(edited.status, JSON.stringify(edited.body)).toBe(200);
    await expect.poll(async () => (await itemOf('/feed', postId))?.title, poll).toBe('A workbench, revised');
    await expect.poll(async () => (await itemOf(`/feed/users/${user.id}`, postId))?.version, poll).toBe(2);

    const renamed = await call(`${gateway}/profiles/me`, { method: 'PUT', token: user.token, body: { displayName: 'Plywood Pat' } });
    expect(renamed.status, JSON.stringify(renamed.body)).toBe(200);
    await expect.poll(async () => (await itemOf('/feed', postId))?.authorDisplayName, poll).toBe('Plywood Pat');
    expect((await itemOf(`/feed/users/${user.id}`, postId))?.authorDisplayName).toBe('Plywood Pat');

    const deleted = await call(`${gateway}/posts/${postId}`, { method: 'DELETE', token: user.token });
    expect(deleted.status).toBe(204);
    await expect.poll(async () => (await itemOf('/feed', postId)) === undefined, poll).toBe(true);
    await expect.poll(async () => (await itemOf(`/feed/users/${user.id}`, postId)) === undefined, poll).toBe(true);
    expect((await call(`${gateway}/posts/${postId}`)).status).toBe(404);
  });

  it('loses no event when feed-service is killed mid-stream and restarted', async () => {
    const user = await registerAndLogin();
    const titles = Array.from({ length: 40 }, (_, index) => `Raised bed, part ${index + 1}`);
    const postIds: string[] = [];
    const publish = async (title: string) => {
      const response = await call(`${gateway}/posts`, { token: user.token, body: { title, body: 'Cedar boards and corner posts.', tags: ['garden'] } });
      expect(response.status, JSON.stringify(response.body)).toBe(201);
      postIds.push(response.body.postId as string);
    };

    for (const title of titles.slice(0, 15)) await publish(title);
    // SIGKILL: no graceful close, whatever it had read but not acknowledged must be redelivered.
    const killed = system.processes.get('feed-service')!;
    await killed.stop('SIGKILL');
    for (const title of titles.slice(15, 30)) await publish(title);
    await system.restart('feed-service');
    for (const title of titles.slice(30)) await publish(title);

    await expect
      .poll(async () => (await wholeFeed(`/feed/users/${user.id}`)).map((item) => item.postId).sort(), poll)
      .toEqual([...postIds].sort());
    const global = new Set((await wholeFeed('/feed')).map((item) => item.postId));
    expect(postIds.filter((id) => !global.has(id))).toEqual([]);
  });
});
