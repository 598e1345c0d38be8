import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { count, eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL, startMockProviders, type MockProviders, TYPESCRIPT_NODE_ARGS } from '@civildiy/common/testing';
import * as schema from '../src/db/schema.ts';
import { reindexControl, type ReindexAnswer } from '../src/reindex-control.ts';
import { diyCorpus } from './diy-corpus.ts';
import { edited, eventually, MODEL, startSearchService, type SearchServiceUnderTest } from './search-service-under-test.ts';

let providers: MockProviders;
let service: SearchServiceUnderTest | undefined;

beforeAll(async () => {
  providers = await startMockProviders();
});

afterEach(async () => {
  await service?.close();
  service = undefined;
});

afterAll(async () => {
  await providers?.stop();
});

/** A search-service with the corpus indexed in generation 1. */
async function indexedService(name: string, options: { startBatcher?: boolean } = {}) {
  const started = await startSearchService(name, { embeddingsUrl: providers.embeddingsUrl, batcher: { batchSize: 4 } });
  const corpus = diyCorpus();
  for (const post of Object.values(corpus)) await started.created(post);
  await started.indexed(Object.keys(corpus).length);
  if (options.startBatcher === false) await started.batcher.close();
  return { started, corpus };
}

/** Sends `search.reindex` as `npm run search:reindex` does. */
async function control(target: SearchServiceUnderTest, action: 'start' | 'status' | 'abort'): Promise<ReindexAnswer> {
  const ref = await target.tasks.enqueue(reindexControl, { action });
  return ref.result({ timeoutMs: 10_000 });
}

async function rowsByGeneration(target: SearchServiceUnderTest) {
  const rows = await target.db.select({ generation: schema.indexQueue.generation, n: count() }).from(schema.indexQueue).groupBy(schema.indexQueue.generation);
  const vectors = await target.db.select({ generation: schema.postVectors.generation, n: count() }).from(schema.postVectors).groupBy(schema.postVectors.generation);
  return { rows: Object.fromEntries(rows.map((row) => [row.generation, row.n])), vectors: Object.fromEntries(vectors.map((row) => [row.generation, row.n])) };
}

describe('reindex', () => {
  it('serves the old generation until the new one is complete, then switches and drops the old vectors', async () => {
    const { started, corpus } = await indexedService('reindex-switch', { startBatcher: false });
    service = started;
    const before = await service.searchIds('fix a dripping tap');

    const answer = await control(service, 'start');
    expect(answer.started).toEqual({ generation: 2, resumed: false, copied: 15 });
    expect(answer.building).toMatchObject({ generation: 2, total: 15, counts: { pending: 15, claimed: 0, done: 0, failed: 0 } });
    expect(await service.searchIds('fix a dripping tap')).toEqual(before);
    // An edit during the reindex reaches both generations.
    const tap = edited(corpus.tap!, { title: 'Fixing a dripping bathroom tap', body: 'Replace the washer of the bathroom tap.' });
    await service.processed(await service.updated(tap));
    const status = (await service.get('/search/index/status')).body;
    expect(status).toMatchObject({ activeGeneration: 1, counts: { pending: 1, done: 14 }, reindex: { generation: 2, counts: { pending: 15 } } });

    const batcher = service.addBatcher();
    batcher.start();
    await eventually(async () => (await service!.get('/search/index/status')).body.activeGeneration, 2, 'active generation');
    const after = (await service.get('/search/index/status')).body;
    expect(after).toMatchObject({ activeGeneration: 2, model: 'civildiy-hash-embed-1', reindex: null, counts: { pending: 0, claimed: 0, done: 15, failed: 0 } });
    expect(await rowsByGeneration(service)).toEqual({ rows: { 2: 15 }, vectors: { 2: 15 } });
    const hit = (await service.get('/search?q=dripping%20bathroom%20tap&limit=1')).body.items[0];
    expect(hit).toMatchObject({ postId: tap.postId, version: 2 });
  });

  it('resumes the reindex under way when started again, and drops it on abort', async () => {
    const { started } = await indexedService('reindex-resume', { startBatcher: false });
    service = started;
    await control(service, 'start');
    const again = await control(service, 'start');
    expect(again.started).toEqual({ generation: 2, resumed: true, copied: 0 });
    expect((await rowsByGeneration(service)).rows).toEqual({ 1: 15, 2: 15 });

    const aborted = await control(service, 'abort');
    expect(aborted).toMatchObject({ aborted: 2, activeGeneration: 1, building: null });
    expect(await rowsByGeneration(service)).toEqual({ rows: { 1: 15 }, vectors: { 1: 15 } });
    expect((await control(service, 'abort')).aborted).toBeNull();
  });

  it('is started by an operator over HTTP and runs to the switch; another is aborted over HTTP', async () => {
    const { started } = await indexedService('reindex-http');
    service = started;
    const authorization = `Bearer ${await service.tokens.token(undefined, { roles: ['operator'] })}`;
    const call = (method: 'GET' | 'POST' | 'DELETE') => service!.app.inject({ method, url: '/search/index/reindex', headers: { authorization } });

    const nothing = await call('DELETE');
    expect({ status: nothing.statusCode, code: nothing.json().error.code }).toEqual({ status: 404, code: 'search.reindex_not_found' });

    const start = await call('POST');
    expect(start.statusCode).toBe(202);
    expect(start.json()).toMatchObject({ activeGeneration: 1, started: { generation: 2, resumed: false, copied: 15 }, building: { generation: 2, total: 15 } });
    // Its evidence: generation 2 served, every one of its rows embedded, generation 1 gone.
    await eventually(async () => (await call('GET')).json(), { activeGeneration: 2, model: MODEL, dimensions: 256, building: null }, 'the reindex switched');
    expect(await rowsByGeneration(service)).toEqual({ rows: { 2: 15 }, vectors: { 2: 15 } });

    // With no batcher to embed it, the next reindex stays under way until it is aborted.
    await service.batcher.close();
    expect((await call('POST')).json()).toMatchObject({ started: { generation: 3, resumed: false, copied: 15 } });
    expect((await call('GET')).json()).toMatchObject({ activeGeneration: 2, building: { generation: 3, total: 15 } });
    const aborted = await call('DELETE');
    expect(aborted.statusCode).toBe(200);
    expect(aborted.json()).toEqual({ activeGeneration: 2, model: MODEL, dimensions: 256, building: null, aborted: 3 });
    expect(await rowsByGeneration(service)).toEqual({ rows: { 2: 15 }, vectors: { 2: 15 } });
  });

  it('is followed to the switch by `npm run search:reindex`', async () => {
    const { started } = await indexedService('reindex-cli');
    service = started;
    const cwd = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
    const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, 'src/reindex.ts'], {
      cwd,
      env: { ...process.env, REDIS_BROKER_URL: REDIS_URL, REDIS_KEY_PREFIX: service.prefix, SEARCH_REINDEX_PROGRESS_MS: '100', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, output).toBe(0);
    expect(output).toContain('reindexing 15 posts into generation 2');
    expect(output).toContain('search now serves generation 2');
    const [{ generation }] = (await service.db.select({ generation: schema.searchState.activeGeneration }).from(schema.searchState).where(eq(schema.searchState.id, 1))) as [
      { generation: number },
    ];
    expect(generation).toBe(2);
  });
});
