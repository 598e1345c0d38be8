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

  it('refuses to start when EMBEDDINGS_DIMENSIONS differs from the migrated vector column', async () => {
    const port = await freePort();
    const service = await startServiceProcess({ root: repositoryRoot, workspace: 'search-service', env: env(port, { EMBEDDINGS_DIMENSIONS: '512' }) });
    const exit = await service.exited;
    expect(exit.code).toBe(78);
    expect(service.output()).toContain('post_vectors.embedding is vector(256)');
  });
});
