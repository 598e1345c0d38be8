import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestTokens, type TestTokens } from '@civildiy/common/testing';
import { ROUTED_SERVICES } from '../src/config.ts';
import { deadUrl, startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type StubUpstream } from './stub-upstream.ts';

// Assertions walk arbitrary JSON documents.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function getJson(url: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.json() };
}

const bearer = { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } };

const postsDocs = {
  openapi: '3.0.3',
  info: { title: 'CivilDIY posts-service', description: 'Build write-ups.', version: '0.1.0' },
  components: {
    securitySchemes: bearer,
    schemas: { Post: { type: 'object', properties: { id: { type: 'string' }, title: { type: 'string' } } } },
  },
  paths: {
    '/posts': {
      get: { tags: ['posts'], responses: { 200: { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Post' } } } } } },
      post: { tags: ['posts'], security: [{ bearerAuth: [] }], responses: { 201: { description: 'created' } } },
    },
    '/posts/{id}': { get: { tags: ['posts'], responses: { 200: { description: 'ok' } } } },
    '/health/ready': { get: { tags: ['health'], responses: { 200: { description: 'ready' } } } },
  },
};

const feedDocs = {
  openapi: '3.0.3',
  info: { title: 'CivilDIY feed-service', description: 'Activity feeds.', version: '0.1.0' },
  components: {
    securitySchemes: bearer,
    schemas: { Post: { type: 'object', properties: { postId: { type: 'string' }, excerpt: { type: 'string' } } } },
  },
  paths: {
    '/feed': { get: { tags: ['feed'], responses: { 200: { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Post' } } } } } } },
    // Not routed to feed-service by the gateway: must not appear.
    '/internal/rebuild': { post: { responses: { 202: { description: 'accepted' } } } },
  },
};

let tokens: TestTokens;
let posts: StubUpstream;
let feed: StubUpstream;
let everyone: StubUpstream;
let gateway: GatewayUnderTest;

beforeAll(async () => {
  tokens = await createTestTokens();
  [posts, feed, everyone] = await Promise.all([
    startStubUpstream('posts-service', { docs: postsDocs }),
    startStubUpstream('feed-service', { docs: feedDocs }),
    startStubUpstream('every-other-service'),
  ]);
  gateway = await startGateway({
    auth: tokens.keys,
    urls: { 'posts-service': posts.url, 'feed-service': feed.url, 'profile-service': await deadUrl() },
    unconfigured: ['search-service'],
    env: { GATEWAY_DOCS_CACHE_MS: '0' },
  });
});

afterAll(async () => {
  await gateway?.close();
  await Promise.all([posts?.close(), feed?.close(), everyone?.close()]);
});

describe('GET /docs/json', () => {
  it("merges the services' documents: reachable operations tagged by service, colliding schemas renamed with their references", async () => {
    const { status, body: document } = await getJson(`${gateway.url}/docs/json`);
    expect(status).toBe(200);

    expect(document.info.title).toBe('CivilDIY API');
    expect(document.paths['/posts'].get.tags).toEqual(['posts-service']);
    expect(document.paths['/posts'].post.security).toEqual([{ bearerAuth: [] }]);
    expect(document.paths['/posts/{id}'].get.tags).toEqual(['posts-service']);
    expect(document.paths['/feed'].get.tags).toEqual(['feed-service']);
    expect(document.paths['/internal/rebuild']).toBeUndefined();
    // The gateway's own health routes, not the services' internal ones.
    expect(document.paths['/health'].get.tags).toEqual(['gateway']);
    expect(document.paths['/health/ready'].get.tags).toEqual(['gateway']);

    expect(document.components.schemas.Post.properties).toHaveProperty('title');
    expect(document.components.schemas['feed-service.Post'].properties).toHaveProperty('excerpt');
    expect(document.paths['/posts'].get.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/Post');
    expect(document.paths['/feed'].get.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/feed-service.Post');
    expect(Object.keys(document.components.securitySchemes)).toEqual(['bearerAuth']);

    const tags = document.tags.map((tag: { name: string }) => tag.name);
    expect(tags).toEqual(expect.arrayContaining(['gateway', 'posts-service', 'feed-service', 'profile-service']));
  });

  it('lists a service that does not answer as unavailable instead of failing the document', async () => {
    const { body: document } = await getJson(`${gateway.url}/docs/json`);
    expect(document.info.description).toMatch(/profile-service\*\*: unavailable/);
    expect(document.info.description).toMatch(/search-service\*\*: unavailable/);
    expect(document.tags.find((tag: { name: string }) => tag.name === 'profile-service').description).toMatch(/^Unavailable/);
  });

  it('serves Swagger UI at /docs', async () => {
    const response = await fetch(`${gateway.url}/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
  });
});

describe('GET /health', () => {
  it('answers 503 and names the upstream that is down, with the others up', async () => {
    const { status, body: health } = await getJson(`${gateway.url}/health`);
    expect(status).toBe(503);
    expect(health.status).toBe('not_ready');
    expect(health.gateway).toMatchObject({ status: 'up', checks: { redis: { status: 'up' } } });
    expect(health.services['posts-service']).toMatchObject({ status: 'up', instances: [{ url: posts.url, status: 'up', httpStatus: 200 }] });
    expect(health.services['profile-service'].status).toBe('down');
    expect(health.services['search-service'].status).toBe('not_configured');
  });

  it('answers 200 when every configured upstream is ready, and 503 again when one reports not ready', async () => {
    const urls = Object.fromEntries(ROUTED_SERVICES.map((service) => [service, everyone.url]));
    const allUp = await startGateway({ auth: tokens.keys, urls });
    try {
      const ready = await getJson(`${allUp.url}/health`);
      expect(ready.status).toBe(200);
      expect(ready.body.status).toBe('ready');

      everyone.setReady(false);
      const notReady = await getJson(`${allUp.url}/health`);
      expect(notReady.status).toBe(503);
      expect(notReady.body.services['order-service']).toMatchObject({ status: 'down', instances: [{ httpStatus: 503 }] });
    } finally {
      everyone.setReady(true);
      await allUp.close();
    }
  });
});
