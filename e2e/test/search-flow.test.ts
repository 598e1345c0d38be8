import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventBuses } from './event-buses.ts';
import { UNLIMITED_GATEWAY, call, registerUser, startSystem, type System } from './system.ts';

const poll = { timeout: 60_000, interval: 100 };

/**
 * Flow 5.3 with real processes, through the gateway: a post goes posts-events → search-service
 * buffer → search.embed on the worker → embeddings provider → pgvector, and is found by meaning;
 * run once with the events on Redis Streams and once on Kafka.
 */
for (const bus of await eventBuses()) describe.skipIf(bus.skipReason !== undefined)(`post → search through the gateway, real processes, events on ${bus.title}`, () => {
  let system: System;
  let gateway: string;
  let token: string;

  beforeAll(async () => {
    system = await startSystem({
      services: ['mock-providers', 'auth-service', 'posts-service', 'search-service', 'worker', 'gateway'],
      env: { ...UNLIMITED_GATEWAY, ...bus.env() },
    });
    gateway = system.urls.gateway;
    token = (await registerUser(gateway, 'seeker')).token;
  }, 180_000);

  afterAll(async () => {
    await system?.stop();
  });

  async function topResults(q: string) {
    const response = await call(`${gateway}/search?q=${encodeURIComponent(q)}&limit=5`);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body.items as { postId: string; title: string; score: number; version: number }[];
  }

  async function publish(title: string, body: string, tags: string[]) {
    const response = await call(`${gateway}/posts`, { token, body: { title, body, tags } });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body.postId as string;
  }

  it('finds a post by meaning once indexed, follows its edit and forgets it when deleted', async () => {
    const bed = await publish('Cedar raised garden bed', 'Cedar boards, corner posts and a layer of compost for the vegetable garden.', ['garden']);
    const lamp = await publish('Rewiring a ceiling lamp', 'Turn off the breaker, test the wires, connect the fixture and the switch.', ['electrical']);

    await expect.poll(async () => (await topResults('raised bed for vegetables from cedar'))[0]?.postId, poll).toBe(bed);
    await expect.poll(async () => (await topResults('ceiling light wiring and switch'))[0]?.postId, poll).toBe(lamp);

    const similar = await call(`${gateway}/search/similar/${bed}`);
    expect(similar.status, JSON.stringify(similar.body)).toBe(200);
    expect(similar.body.items.map((item: { postId: string }) => item.postId)).not.toContain(bed);

    const edited = await call(`${gateway}/posts/${lamp}`, {
      method: 'PATCH',
      token,
      body: { title: 'Tiling a bathroom floor', body: 'Porcelain tiles, spacers, mortar and grout on the bathroom floor.', tags: ['tiling'] },
    });
    expect(edited.status, JSON.stringify(edited.body)).toBe(200);
    await expect.poll(async () => (await topResults('porcelain tiles on a bathroom floor'))[0], poll).toMatchObject({ postId: lamp, version: 2 });

    const deleted = await call(`${gateway}/posts/${bed}`, { method: 'DELETE', token });
    expect(deleted.status).toBe(204);
    await expect.poll(async () => (await topResults('raised bed for vegetables from cedar')).some((item) => item.postId === bed), poll).toBe(false);
  });
});
