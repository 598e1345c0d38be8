import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { createTestTokens, type TestTokens } from '@civildiy/common/testing';
import { startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type Echo, type StubUpstream } from './stub-upstream.ts';

let tokens: TestTokens;
let posts: StubUpstream;
let orders: StubUpstream;
let auth: StubUpstream;
let gateway: GatewayUnderTest;

beforeAll(async () => {
  tokens = await createTestTokens();
  [posts, orders, auth] = await Promise.all([startStubUpstream('posts-service'), startStubUpstream('order-service'), startStubUpstream('auth-service')]);
  gateway = await startGateway({ auth: tokens.keys, urls: { 'posts-service': posts.url, 'order-service': orders.url, 'auth-service': auth.url } });
});

afterAll(async () => {
  await gateway?.close();
  await Promise.all([posts?.close(), orders?.close(), auth?.close()]);
});

async function call(path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(`${gateway.url}${path}`, init);
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** The token with one character of its signature changed. */
function tampered(token: string): string {
  const last = token.at(-2) === 'A' ? 'B' : 'A';
  return `${token.slice(0, -2)}${last}${token.at(-1)}`;
}

describe('identity the gateway forwards', () => {
  it('replaces a client-sent X-User-ID and X-Username with the verified user, and forwards Authorization unchanged', async () => {
    const userId = newId();
    const token = await tokens.token(userId, { username: 'alice' });
    const { status, body } = await call('/posts', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'x-user-id': newId(), 'x-username': 'mallory', 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'shelf' }),
    });
    expect(status).toBe(200);
    const echo = body as unknown as Echo;
    expect(echo.service).toBe('posts-service');
    expect(echo.headers['x-user-id']).toBe(userId);
    expect(echo.headers['x-username']).toBe('alice');
    expect(echo.headers.authorization).toBe(`Bearer ${token}`);
    expect(echo.body).toBe(JSON.stringify({ title: 'shelf' }));
  });

  it('drops a client-sent X-User-ID on a public route called without a token', async () => {
    const { status, body } = await call('/posts?tag=wood', { headers: { 'x-user-id': newId(), 'x-username': 'mallory' } });
    expect(status).toBe(200);
    const echo = body as unknown as Echo;
    expect(echo.url).toBe('/posts?tag=wood');
    expect(echo.headers['x-user-id']).toBeUndefined();
    expect(echo.headers['x-username']).toBeUndefined();
  });

  it('forwards the user of a valid token on a public route too', async () => {
    const userId = newId();
    const { body } = await call('/posts', { headers: { authorization: `Bearer ${await tokens.token(userId)}` } });
    expect((body as unknown as Echo).headers['x-user-id']).toBe(userId);
  });

  it('generates an X-Request-ID when none is sent and gives the same one to the upstream and the client', async () => {
    const { headers, body } = await call('/catalog');
    const id = headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((body as unknown as Echo).headers['x-request-id']).toBe(id);
  });

  it("keeps the client's sane X-Request-ID and replaces one that is not", async () => {
    const kept = await call('/catalog', { headers: { 'x-request-id': 'trace-123.abc' } });
    expect(kept.headers.get('x-request-id')).toBe('trace-123.abc');
    expect((kept.body as unknown as Echo).headers['x-request-id']).toBe('trace-123.abc');

    const replaced = await call('/catalog', { headers: { 'x-request-id': 'not sane {}' } });
    expect(replaced.headers.get('x-request-id')).not.toBe('not sane {}');
    expect((replaced.body as unknown as Echo).headers['x-request-id']).toBe(replaced.headers.get('x-request-id'));
  });

  it('sets X-Forwarded-For to the connecting address, ignoring what the client claims, plus X-Forwarded-Proto and -Host', async () => {
    const { body } = await call('/catalog', { headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-host': 'evil.example' } });
    const echo = body as unknown as Echo;
    expect(echo.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(echo.headers['x-forwarded-proto']).toBe('http');
    expect(echo.headers['x-forwarded-host']).toBe(new URL(gateway.url).host);
  });
});

describe('tokens the gateway refuses', () => {
  const protectedCall = (authorization?: string) =>
    call('/orders', { method: 'GET', headers: authorization === undefined ? {} : { authorization } });

  it('answers 401 auth.missing_token on a protected route without a token, without calling the service', async () => {
    const before = orders.hits.get('/orders') ?? 0;
    const { status, body } = await protectedCall();
    expect(status).toBe(401);
    expect(body).toMatchObject({ error: { code: 'auth.missing_token' } });
    expect(orders.hits.get('/orders') ?? 0).toBe(before);
  });

  it('answers 401 auth.invalid_token for a token whose signature was tampered with', async () => {
    const { status, body } = await protectedCall(`Bearer ${tampered(await tokens.token())}`);
    expect(status).toBe(401);
    expect(body).toMatchObject({ error: { code: 'auth.invalid_token' } });
  });

  it('answers 401 auth.token_expired for an expired token', async () => {
    const expired = await tokens.token(newId(), { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    const { status, body } = await protectedCall(`Bearer ${expired}`);
    expect(status).toBe(401);
    expect(body).toMatchObject({ error: { code: 'auth.token_expired' } });
  });

  it('answers 401 for an unsigned alg:none token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub: newId(), iss: 'civildiy-auth', aud: 'civildiy', iat: now, exp: now + 300, typ: 'access' })}.`;
    const { status, body } = await protectedCall(`Bearer ${unsigned}`);
    expect(status).toBe(401);
    expect(body).toMatchObject({ error: { code: 'auth.invalid_token' } });
  });

  it('answers 401 for a token signed by a foreign key under a known kid', async () => {
    const { status, body } = await protectedCall(`Bearer ${await tokens.foreignToken(newId())}`);
    expect(status).toBe(401);
    expect(body).toMatchObject({ error: { code: 'auth.invalid_token' } });
  });

  it('answers 401 for a bad token on a public route instead of serving it anonymously', async () => {
    const before = posts.hits.get('/posts') ?? 0;
    const { status, body } = await call('/posts', { headers: { authorization: `Bearer ${tampered(await tokens.token())}` } });
    expect(status).toBe(401);
    expect(body).toMatchObject({ error: { code: 'auth.invalid_token' } });
    expect(posts.hits.get('/posts') ?? 0).toBe(before);
  });

  it('leaves tokens on /auth routes to auth-service, so a client sending its expired access token can still refresh', async () => {
    const expired = await tokens.token(newId(), { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    const { status, body } = await call('/auth/refresh', {
      method: 'POST',
      headers: { authorization: `Bearer ${expired}`, 'x-user-id': newId(), 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: 'opaque' }),
    });
    expect(status).toBe(200);
    const echo = body as unknown as Echo;
    expect(echo.service).toBe('auth-service');
    expect(echo.headers.authorization).toBe(`Bearer ${expired}`);
    expect(echo.headers['x-user-id']).toBeUndefined();
  });

  it('lets a valid token through to a protected route', async () => {
    const userId = newId();
    const { status, body } = await protectedCall(`Bearer ${await tokens.token(userId)}`);
    expect(status).toBe(200);
    expect((body as unknown as Echo).headers['x-user-id']).toBe(userId);
  });
});
