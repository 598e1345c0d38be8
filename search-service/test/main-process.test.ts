import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embedBatch, postCreated } from '@civildiy/common/contracts';
import { RedisStreamsEventBus } from '@civildiy/common/events';
import { TaskWorker } from '@civildiy/common/tasks';
import {
  freePort,
  REDIS_URL,
  removeRedisPrefix,
  repositoryRoot,
  startMockProviders,
  startServiceProcess,
  uniquePrefix,
  type MockProviders,
} from '@civildiy/common/testing';
import { eventually, handleEmbeddings, logger, newPost } from './search-service-under-test.ts';

/** Another model in another dimension (the mock seeds its hashing with the model's name). */
const SPACE_384 = { model: 'civildiy-hash-embed-384', dimensions: 384 };

let providers: MockProviders;
let worker: TaskWorker;
let bus: RedisStreamsEventBus;
let dataDir: string;
const prefix = uniquePrefix('search-main');

beforeAll(async () => {
  providers = await startMockProviders();
  dataDir = await mkdtemp(path.join(tmpdir(), 'search-service-'));
  // The worker process's search.embed, run here under the service's prefix.
  worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: [embedBatch.queue], logger });
  handleEmbeddings(worker, { embeddingsUrl: providers.embeddingsUrl });
  await worker.start();
  bus = new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger });
});

afterAll(async () => {
  await worker?.close();
  await bus?.close();
  await providers?.stop();
  await removeRedisPrefix(prefix);
  await rm(dataDir, { recursive: true, force: true });
});

function env(port: number, extra: Record<string, string> = {}) {
  return {
    SEARCH_PORT: String(port),
    DATA_DIR: dataDir,
    REDIS_BROKER_URL: REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    // The defaults, whatever the shell running the tests says.
    EMBEDDINGS_MODEL: 'civildiy-hash-embed-1',
    EMBEDDINGS_DIMENSIONS: '256',
    EMBEDDINGS_URL: providers.embeddingsUrl,
    SEARCH_POLL_MS: '200',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

describe('search-service as a process', () => {
  it('indexes a published post on the embedded database, answers searches over HTTP and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const service = await startServiceProcess({ root: repositoryRoot, workspace: 'search-service', env: env(port), readyUrl: `http://127.0.0.1:${port}/health/ready` });
    try {
      const post = newPost({ title: 'Cedar birdhouse with a copper roof', body: 'Cut the cedar, bend the copper roof and hang the birdhouse.' });
      await bus.publish(postCreated, post);
      const topResult = async () => {
        const response = await fetch(`http://127.0.0.1:${port}/search?q=${encodeURIComponent('cedar birdhouse copper roof')}&limit=1`);
        return ((await response.json()) as { items: { postId: string }[] }).items[0]?.postId;
      };
      await eventually(topResult, post.postId, 'the post found over HTTP');
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^search_index_pending_rows\{service="search-service"\} 0$/m);
      expect(metrics).toMatch(/^search_index_batches_total\{outcome="indexed",service="search-service"\} 1$/m);
    } finally {
      const exit = await service.stop('SIGTERM');
      expect(exit.code, service.output()).toBe(0);
    }
  });

  it('follows another EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS at its next start: the old vectors answer until the new ones are complete', async () => {
    const topResult = async (port: number, q: string) => {
      const response = await fetch(`http://127.0.0.1:${port}/search?q=${encodeURIComponent(q)}&limit=1`);
      return ((await response.json()) as { items: { postId: string }[] }).items[0]?.postId;
    };
    const post = newPost({ title: 'Walnut cutting board with juice groove', body: 'Glue up walnut strips, rout the juice groove and oil the cutting board.' });
    // The 256-dimension index holds the post (and the first test's, when it ran).
    const port = await freePort();
    const before = await startServiceProcess({ root: repositoryRoot, workspace: 'search-service', env: env(port), readyUrl: `http://127.0.0.1:${port}/health/ready` });
    try {
      await bus.publish(postCreated, post);
      await eventually(() => topResult(port, 'walnut cutting board juice groove'), post.postId, 'the post found in 256 dimensions');
    } finally {
      expect((await before.stop('SIGTERM')).code, before.output()).toBe(0);
    }

    // Now the worker and search-service embed with another model, in 384 dimensions.
    await worker.close();
    worker = new TaskWorker({ connection: REDIS_URL, prefix, queues: [embedBatch.queue], logger });
    handleEmbeddings(worker, { embeddingsUrl: providers.embeddingsUrl, space: SPACE_384 });
    await worker.start();
    const after = await startServiceProcess({
      root: repositoryRoot,
      workspace: 'search-service',
      env: env(port, { EMBEDDINGS_MODEL: SPACE_384.model, EMBEDDINGS_DIMENSIONS: '384', LOG_LEVEL: 'info' }),
      readyUrl: `http://127.0.0.1:${port}/health/ready`,
    });
    try {
      await eventually(async () => after.output().includes('search now serves generation 2, civildiy-hash-embed-384 (384 dimensions)'), true, 'the switch to generation 2');
      expect(after.output()).toContain(
        'EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS say civildiy-hash-embed-384 (384 dimensions), not what the index holds: search keeps serving generation 1, civildiy-hash-embed-1 (256 dimensions)',
      );
      expect(after.output()).toContain('made the HNSW index of 384-dimension vectors');
      expect(await topResult(port, 'walnut cutting board juice groove')).toBe(post.postId);
    } finally {
      expect((await after.stop('SIGTERM')).code, after.output()).toBe(0);
    }
    // Two starts of the process, each opening its embedded database.
  }, 90_000);

  it.each([
    ['over what an HNSW index holds', '2001'],
    ['zero', '0'],
    ['no number', '384d'],
  ])('refuses to start with an EMBEDDINGS_DIMENSIONS %s, naming the variable', async (_case, value) => {
    const service = await startServiceProcess({ root: repositoryRoot, workspace: 'search-service', env: env(await freePort(), { EMBEDDINGS_DIMENSIONS: value }) });
    const exit = await service.exited;
    expect(exit.code).toBe(78);
    expect(service.output()).toContain('EMBEDDINGS_DIMENSIONS');
  });
});
