import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SystemService } from '@civildiy/common/testing';
import { GATEWAY_ROUTES, pathHasPrefix } from '@civildiy/common/topology';
import { PASSWORD, UNLIMITED_GATEWAY, call, registerUser, startSystem, type System } from './system.ts';

/**
 * Property-based fuzzing of every public endpoint through the gateway, real processes: whatever
 * the path parameters, query, headers and body, the answer is never a 5xx and no process dies.
 */
let system: System;
let gateway: string;
let token: string;
let otherToken: string;
let ownPostId: string;
let userId: string;

beforeAll(async () => {
  system = await startSystem({
    services: ['mock-providers', 'auth-service', 'profile-service', 'posts-service', 'feed-service', 'search-service', 'order-service', 'notification-service', 'gateway'],
    env: UNLIMITED_GATEWAY,
  });
  gateway = system.urls.gateway;
  const [first, second] = [await registerUser(gateway, 'fuzz'), await registerUser(gateway, 'fuzz')];
  // The first user is an operator (granted as an operator would, carried from the next login), so
  // the fuzzed input reaches the operations routes too; the second is an ordinary user.
  await system.grantRole(first.email);
  const login = await call(`${gateway}/auth/login`, { body: { login: first.email, password: PASSWORD } });
  expect(login.status, JSON.stringify(login.body)).toBe(200);
  token = login.body.accessToken as string;
  userId = first.id;
  otherToken = second.token;
  const post = await call(`${gateway}/posts`, { token, body: { title: 'Fuzz target', body: 'A post the fuzzer edits.', tags: ['fuzz'] } });
  expect(post.status, JSON.stringify(post.body)).toBe(201);
  ownPostId = post.body.postId as string;
}, 180_000);

afterAll(async () => {
  await system?.stop();
});

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
interface Endpoint {
  method: Method;
  /** `{id}` is replaced by a generated path segment. */
  path: string;
  /** A valid body, mutated by the fuzzer. */
  body?: Record<string, unknown>;
}

const ENDPOINTS: Endpoint[] = [
  { method: 'POST', path: '/auth/register', body: { email: 'a@example.com', username: 'someone', password: 'correct horse battery' } },
  { method: 'POST', path: '/auth/login', body: { login: 'someone', password: 'wrong' } },
  { method: 'POST', path: '/auth/refresh', body: { refreshToken: 'x' } },
  { method: 'POST', path: '/auth/logout', body: { refreshToken: 'x' } },
  { method: 'GET', path: '/auth/me' },
  { method: 'GET', path: '/auth/verify' },
  { method: 'GET', path: '/.well-known/jwks.json' },
  { method: 'GET', path: '/profiles/me' },
  { method: 'PUT', path: '/profiles/me', body: { displayName: 'Fuzzy', bio: 'b', location: 'l', skills: ['tiling'], avatarUrl: null } },
  { method: 'PUT', path: '/profiles/{id}', body: { displayName: 'Fuzzy' } },
  { method: 'GET', path: '/profiles/{id}' },
  { method: 'GET', path: '/profiles' },
  { method: 'POST', path: '/posts', body: { title: 't', body: 'b', tags: ['x1'] } },
  { method: 'GET', path: '/posts' },
  { method: 'GET', path: '/posts/{id}' },
  { method: 'PATCH', path: '/posts/{id}', body: { title: 'new title' } },
  { method: 'DELETE', path: '/posts/{id}' },
  { method: 'GET', path: '/feed' },
  { method: 'GET', path: '/feed/users/{id}' },
  { method: 'GET', path: '/search' },
  { method: 'GET', path: '/search/similar/{id}' },
  { method: 'GET', path: '/search/index/status' },
  { method: 'POST', path: '/search/index/failed/redrive', body: {} },
  { method: 'GET', path: '/search/index/reindex' },
  { method: 'GET', path: '/feed/rebuild' },
  { method: 'GET', path: '/catalog' },
  { method: 'POST', path: '/orders', body: { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] } },
  { method: 'GET', path: '/orders' },
  { method: 'GET', path: '/orders/{id}' },
  { method: 'GET', path: '/notifications' },
];

/** Path segments: real ids (own post, own user), random uuids, and hostile text. */
const segment = () =>
  fc.oneof(
    fc.constant(ownPostId),
    fc.constant(userId),
    fc.uuid(),
    fc.string({ maxLength: 40 }),
    fc.constantFrom('..', '%00', '%2e%2e%2f', "'; drop table posts;--", '9'.repeat(400), 'me', '-1', 'null'),
  );

/** A JSON value that replaces a field, or the whole body. */
const hostileValue = fc.oneof(
  fc.anything({ maxDepth: 2 }),
  fc.string({ maxLength: 300 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom(null, true, [], {}, '', 'javascript:alert(1)', '\u0000', '\ud800', 'a\udfffb', 'x'.repeat(30_000), -1, 1e308),
);

/** The valid body with one field changed, removed or added; or a different JSON value altogether. */
const bodyFor = (valid: Record<string, unknown> | undefined) =>
  fc.oneof(
    fc.record({ field: fc.constantFrom(...Object.keys(valid ?? { x: 1 }), '__proto__', 'constructor', 'extra'), value: hostileValue, drop: fc.boolean() }).map(({ field, value, drop }) => {
      const body: Record<string, unknown> = { ...valid };
      if (drop) delete body[field];
      else Object.defineProperty(body, field, { value, enumerable: true, writable: true, configurable: true });
      return JSON.stringify(body);
    }),
    hostileValue.map((value) => JSON.stringify(value) ?? 'null'),
    fc.string({ maxLength: 200 }),
    fc.constant('{"unterminated": '),
    // Deeper than any parser should recurse over: refused with 400 json_too_deep, not a stack overflow.
    fc.constant(`{"title":${'['.repeat(5_000)}${']'.repeat(5_000)}}`),
  );

const query = fc.dictionary(
  fc.constantFrom('limit', 'cursor', 'author', 'tag', 'username', 'q', 'exact', 'x'),
  fc.oneof(fc.string({ maxLength: 50 }), fc.integer().map(String), fc.uuid(), fc.constantFrom('-1', '0', '101', '1e9', 'NaN', '%', '[]')),
  { maxKeys: 3 },
);

const headers = fc.record(
  {
    // Mostly a valid token, so the fuzzed input reaches the services behind the token check.
    authorization: fc.oneof(
      { arbitrary: fc.constant('own'), weight: 6 },
      { arbitrary: fc.constant('other'), weight: 2 },
      { arbitrary: fc.constantFrom('Bearer ', 'Bearer x.y.z', 'Basic Zm9vOmJhcg==', 'bearer eyJhbGciOiJub25lIn0.e30.'), weight: 1 },
      { arbitrary: fc.string({ maxLength: 60 }).map((value) => `Bearer ${value}`), weight: 1 },
    ),
    'if-match': fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('"1"', 'W/"2"', '*', '"-1"', '99999999999999999999')),
    'idempotency-key': fc.oneof(fc.uuid(), fc.string({ maxLength: 300 })),
    'content-type': fc.oneof(
      { arbitrary: fc.constant('application/json'), weight: 6 },
      { arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'multipart/form-data'), weight: 1 },
    ),
    'x-user-id': fc.oneof(fc.uuid(), fc.string({ maxLength: 40 })),
    'x-request-id': fc.string({ maxLength: 300 }),
  },
  { requiredKeys: [] },
);

/** Header values fetch can send (no control characters or non-latin1). */
const sendable = (value: string) => value.replace(/[^\x20-\x7e]/g, '');

async function send(endpoint: Endpoint, id: string, params: Record<string, string>, extra: Record<string, string>, body: string | undefined) {
  const path = endpoint.path.replace('{id}', encodeURIComponent(id));
  const search = new URLSearchParams(params).toString();
  const requestHeaders: Record<string, string> = {};
  for (const [name, value] of Object.entries(extra)) {
    if (name === 'authorization') {
      requestHeaders[name] = value === 'own' ? `Bearer ${token}` : value === 'other' ? `Bearer ${otherToken}` : sendable(value);
    } else {
      requestHeaders[name] = sendable(value);
    }
  }
  const response = await fetch(`${gateway}${path}${search ? `?${search}` : ''}`, {
    method: endpoint.method,
    headers: requestHeaders,
    ...(endpoint.method === 'GET' || endpoint.method === 'DELETE' || body === undefined ? {} : { body }),
  });
  const text = await response.text();
  return { status: response.status, text };
}

describe('the services behind the gateway, reached directly', () => {
  const protectedEndpoints = ENDPOINTS.filter((endpoint) => {
    const route = GATEWAY_ROUTES.find((entry) => pathHasPrefix(endpoint.path, entry.prefix) && (entry.methods ?? [endpoint.method]).includes(endpoint.method));
    return route !== undefined && route.access !== 'public';
  });

  it.each(protectedEndpoints.map((endpoint) => [`${endpoint.method} ${endpoint.path}`, endpoint] as const))(
    '%s answers 401 auth.missing_token without a token, as the gateway does',
    async (_name, endpoint) => {
      const route = GATEWAY_ROUTES.find((entry) => pathHasPrefix(endpoint.path, entry.prefix) && (entry.methods ?? [endpoint.method]).includes(endpoint.method))!;
      const base = system.serviceUrls[route.service as SystemService];
      const response = await call(`${base}${endpoint.path.replace('{id}', ownPostId)}`, {
        method: endpoint.method,
        ...(endpoint.body && endpoint.method !== 'GET' && endpoint.method !== 'DELETE' ? { body: endpoint.body } : {}),
      });
      expect({ status: response.status, code: response.body?.error?.code }).toEqual({ status: 401, code: 'auth.missing_token' });
    },
  );
});

describe('the operations routes through the gateway', () => {
  const OPERATIONS = [
    { method: 'GET', path: '/search/index/status', ok: 200 },
    { method: 'GET', path: '/search/index/reindex', ok: 200 },
    { method: 'POST', path: '/search/index/failed/redrive', ok: 200 },
    { method: 'GET', path: '/feed/rebuild', ok: 200 },
  ] as const;

  it.each(OPERATIONS)(
    '$method $path answers 401 without a token, 403 auth.role_required for an ordinary user, and the service answers an operator whose role the command granted',
    async ({ method, path, ok }) => {
      const anonymous = await call(`${gateway}${path}`, { method });
      expect({ status: anonymous.status, code: anonymous.body?.error?.code }).toEqual({ status: 401, code: 'auth.missing_token' });
      const user = await call(`${gateway}${path}`, { method, token: otherToken });
      expect({ status: user.status, code: user.body?.error?.code }).toEqual({ status: 403, code: 'auth.role_required' });
      const operator = await call(`${gateway}${path}`, { method, token });
      expect(operator.status, JSON.stringify(operator.body)).toBe(ok);
    },
  );

  it('refuses an ordinary user at the service itself too, reached without the gateway', async () => {
    const direct = await call(`${system.urls.search}/search/index/status`, { token: otherToken });
    expect({ status: direct.status, code: direct.body?.error?.code }).toEqual({ status: 403, code: 'auth.role_required' });
    const feed = await call(`${system.urls.feed}/feed/rebuild`, { token: otherToken });
    expect({ status: feed.status, code: feed.body?.error?.code }).toEqual({ status: 403, code: 'auth.role_required' });
  });
});

describe('every public endpoint through the gateway under fuzzed input', () => {
  it.each(ENDPOINTS.map((endpoint) => [`${endpoint.method} ${endpoint.path}`, endpoint] as const))('%s never answers 5xx', async (_name, endpoint) => {
    await fc.assert(
      fc.asyncProperty(segment(), query, headers, bodyFor(endpoint.body), async (id, params, extra, body) => {
        const { status, text } = await send(endpoint, id, params, extra, body);
        expect(status, `${endpoint.method} ${endpoint.path} → ${status} ${text.slice(0, 300)}`).toBeLessThan(500);
      }),
      { numRuns: 60 },
    );
  });

  it('every process is still up and ready afterwards', async () => {
    for (const [name, service] of system.processes) expect(service.child.exitCode, `${name} exited`).toBeNull();
    const health = await call(`${gateway}/health`);
    // The gateway's view of every upstream this system started (the dashboard is not started here).
    const started = Object.entries(health.body.services as Record<string, { status: string }>).filter(([name]) => system.services.includes(name as SystemService));
    expect(started.length).toBeGreaterThanOrEqual(7);
    for (const [name, { status }] of started) expect({ name, status }, JSON.stringify(health.body)).toEqual({ name, status: 'up' });
    expect(health.body.gateway.status).toBe('up');
  });
});
