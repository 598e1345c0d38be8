import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { createTestTokens, type TestTokens } from '@civildiy/common/testing';
import { deadUrl, startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type Echo, type StubUpstream } from './stub-upstream.ts';

let tokens: TestTokens;
let posts: StubUpstream;
let feed: StubUpstream;
let gateway: GatewayUnderTest;
let corsGateway: GatewayUnderTest;

beforeAll(async () => {
  tokens = await createTestTokens();
  [posts, feed] = await Promise.all([startStubUpstream('posts-service'), startStubUpstream('feed-service', { slowMs: 3_000 })]);
  const urls = { 'posts-service': posts.url, 'feed-service': feed.url, 'profile-service': await deadUrl() };
  [gateway, corsGateway] = await Promise.all([
    startGateway({ auth: tokens.keys, urls, unconfigured: ['search-service'], env: { GATEWAY_UPSTREAM_TIMEOUT_MS: '300', GATEWAY_BODY_LIMIT_BYTES: '1024' } }),
    startGateway({ auth: tokens.keys, urls, env: { GATEWAY_CORS_ORIGINS: 'https://app.example,https://admin.example' } }),
  ]);
});

afterAll(async () => {
  await Promise.all([gateway?.close(), corsGateway?.close()]);
  await Promise.all([posts?.close(), feed?.close()]);
});

async function authorized(): Promise<Record<string, string>> {
  return { authorization: `Bearer ${await tokens.token(newId())}` };
}

describe('upstream failures', () => {
  it('answers 502 gateway.upstream_unavailable when the service refuses connections', async () => {
    const response = await fetch(`${gateway.url}/profiles/me`);
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ error: { code: 'gateway.upstream_unavailable' } });
    expect(response.headers.get('x-request-id')).toBeTruthy();
  });

  it('answers 502 gateway.upstream_unavailable for a routed service discovery knows no instance of', async () => {
    const response = await fetch(`${gateway.url}/search?q=shelf`);
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ error: { code: 'gateway.upstream_unavailable' } });
  });

  it('answers 504 gateway.upstream_timeout when the service does not answer within the timeout', async () => {
    const started = Date.now();
    const response = await fetch(`${gateway.url}/feed/slow`);
    expect(response.status).toBe(504);
    expect(await response.json()).toMatchObject({ error: { code: 'gateway.upstream_timeout' } });
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  it.each([404, 409, 500, 503])("passes the service's own %i through unchanged: status, body and headers, without retrying", async (code) => {
    const path = `/posts/${newId()}/status/${code}`;
    const response = await fetch(`${gateway.url}${path}`);
    expect(response.status).toBe(code);
    expect(response.headers.get('x-stub')).toBe('posts-service');
    expect(await response.json()).toEqual({ error: { code: `stub.status_${code}`, message: `posts-service answered ${code}` } });
    expect(posts.hits.get(path)).toBe(1);
  });
});

describe('what the gateway refuses itself', () => {
  it('answers 413 payload_too_large for a declared body over the limit, without calling the service', async () => {
    const response = await fetch(`${gateway.url}/posts`, {
      method: 'POST',
      headers: { ...(await authorized()), 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'x'.repeat(2_000) }),
    });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: 'payload_too_large' } });
  });

  it('answers 413 for a streamed (chunked) body that grows past the limit', async () => {
    const chunk = new TextEncoder().encode('y'.repeat(600));
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk);
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const response = await fetch(`${gateway.url}/posts`, {
      method: 'POST',
      headers: { ...(await authorized()), 'content-type': 'text/plain' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: 'payload_too_large' } });
  });

  it('forwards a request that asked for 100-continue (curl does, for uploads over 1 MB) instead of answering 502', async () => {
    const answer = await new Promise<{ status: number; body: Echo }>((resolve, reject) => {
      const body = JSON.stringify({ text: 'small' });
      void authorized().then((auth) => {
        const request = httpRequest(
          `${gateway.url}/posts/continue`,
          { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: '100-continue' } },
          (response) => {
            let text = '';
            response.on('data', (chunk) => (text += chunk));
            response.on('end', () => resolve({ status: response.statusCode!, body: JSON.parse(text) as Echo }));
          },
        );
        request.on('continue', () => request.end(body));
        request.on('error', reject);
      });
    });
    expect(answer.status).toBe(200);
    expect(answer.body.headers.expect).toBeUndefined();
    expect(answer.body.body).toBe(JSON.stringify({ text: 'small' }));
  });

  it('answers every one of 36 uploads of 10 MB (declared, chunked, or chunked after 100-continue as curl sends them) with 413, never a reset or a 502', async () => {
    const big = Buffer.alloc(10 * 1024 * 1024, 0x61);
    const auth = await authorized();
    const outcomes = await Promise.all(
      Array.from({ length: 36 }, (_, i) =>
        new Promise<string>((resolve) => {
          const headers: Record<string, string | number> = { ...auth, 'content-type': 'application/json' };
          const mode = i % 3;
          if (mode === 0) headers['content-length'] = big.length;
          if (mode === 2) headers.expect = '100-continue';
          const request = httpRequest(`${gateway.url}/posts`, { method: 'POST', headers }, (response) => {
            let text = '';
            response.on('data', (chunk) => (text += chunk));
            response.on('end', () => resolve(`${response.statusCode} ${(JSON.parse(text) as { error?: { code?: string } }).error?.code}`));
          });
          request.on('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code}`));
          if (mode === 2) request.on('continue', () => request.end(big));
          else request.end(big);
        }),
      ),
    );
    expect(new Set(outcomes)).toEqual(new Set(['413 payload_too_large']));
  });

  it('answers 400 json_too_deep for a JSON body nested 500 levels, declared or chunked, and lets 60 levels through', async () => {
    const deep = `{"a":${'['.repeat(500)}${']'.repeat(500)}}`; // within this gateway's 1 KiB body limit
    for (const type of ['application/json', 'application/merge-patch+json; charset=utf-8']) {
      const declared = await fetch(`${gateway.url}/posts`, { method: 'POST', headers: { ...(await authorized()), 'content-type': type }, body: deep });
      expect(declared.status).toBe(400);
      expect(await declared.json()).toMatchObject({ error: { code: 'json_too_deep' } });
    }
    const chunked = await fetch(`${gateway.url}/posts`, {
      method: 'POST',
      headers: { ...(await authorized()), 'content-type': 'application/json' },
      body: new Blob([deep]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(400);
    const fine = `{"a":${'['.repeat(60)}${']'.repeat(60)}}`;
    const passed = await fetch(`${gateway.url}/posts/deep`, { method: 'POST', headers: { ...(await authorized()), 'content-type': 'application/json' }, body: fine });
    expect(passed.status).toBe(200);
    expect(((await passed.json()) as Echo).body).toBe(fine);
  });

  it('streams a body within the limit to the service byte for byte, whatever its content type', async () => {
    const payload = 'z'.repeat(1_000);
    const response = await fetch(`${gateway.url}/posts`, {
      method: 'POST',
      headers: { ...(await authorized()), 'content-type': 'application/octet-stream' },
      body: payload,
    });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    expect(echo).toMatchObject({ bodyLength: 1_000, body: payload });
    expect(echo.headers['content-type']).toBe('application/octet-stream');
  });

  it('forwards HEAD like GET, without a body', async () => {
    const response = await fetch(`${gateway.url}/posts/${newId()}/status/404`, { method: 'HEAD' });
    expect(response.status).toBe(404);
    expect(response.headers.get('x-stub')).toBe('posts-service');
    expect(await response.text()).toBe('');
  });

  it('answers 404 route_not_found for a path no route table entry covers', async () => {
    for (const path of ['/nowhere', '/postsx', '/internal/metrics']) {
      const response = await fetch(`${gateway.url}${path}`);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ error: { code: 'route_not_found' } });
    }
  });

  it('answers 405 with Allow for a method the route table does not offer on that path', async () => {
    const response = await fetch(`${gateway.url}/feed`, { method: 'POST', headers: await authorized() });
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD');
    expect(await response.json()).toMatchObject({ error: { code: 'gateway.method_not_allowed' } });
  });

  it('serves its own /health/live rather than proxying it', async () => {
    expect(await (await fetch(`${gateway.url}/health/live`)).json()).toEqual({ status: 'ok' });
  });
});

describe('CORS', () => {
  it('answers a preflight from an allowed origin with the allowed methods, without calling the service', async () => {
    const before = posts.hits.get('/posts') ?? 0;
    const response = await fetch(`${corsGateway.url}/posts`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(response.headers.get('access-control-allow-methods')).toContain('POST');
    expect(response.headers.get('access-control-allow-headers')).toBe('authorization,content-type');
    expect(posts.hits.get('/posts') ?? 0).toBe(before);
  });

  it('marks proxied answers for an allowed origin and exposes the request id; other origins get no CORS headers', async () => {
    const allowed = await fetch(`${corsGateway.url}/posts`, { headers: { origin: 'https://admin.example' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://admin.example');
    expect(allowed.headers.get('access-control-expose-headers')).toContain('x-request-id');
    const other = await fetch(`${corsGateway.url}/posts`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('sends no CORS headers at all when no origin is configured', async () => {
    const response = await fetch(`${gateway.url}/posts`, { headers: { origin: 'https://app.example' } });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });
});
