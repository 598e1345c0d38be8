import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { createTestTokens, type TestTokens } from '@civildiy/common/testing';
import { GATEWAY_ROUTES, ROUTE_METHODS, pathHasPrefix, routeMethods, type GatewayRoute } from '@civildiy/common/topology';
import { startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type Echo, type StubUpstream } from './stub-upstream.ts';

let tokens: TestTokens;
const stubs = new Map<string, StubUpstream>();
let gateway: GatewayUnderTest;
const gateways: GatewayUnderTest[] = [];

/** Every operator entry of the table, with each method that reaches it on a path under it. */
const OPERATOR_ROUTES = GATEWAY_ROUTES.filter((route) => route.access === 'operator').flatMap((route) => {
  const path = `${route.prefix}/probe`;
  const first = (method: string) => GATEWAY_ROUTES.find((entry) => pathHasPrefix(path, entry.prefix) && routeMethods(entry).has(method as never));
  return ROUTE_METHODS.filter((method) => method !== 'HEAD' && method !== 'OPTIONS' && first(method) === route).map((method) => ({ route, method, path }));
});

beforeAll(async () => {
  tokens = await createTestTokens();
  const services = [...new Set(GATEWAY_ROUTES.filter((route) => route.access === 'operator').map((route) => route.service))];
  for (const service of services) stubs.set(service, await startStubUpstream(service));
  gateway = await startGateway({ auth: tokens.keys, urls: Object.fromEntries([...stubs].map(([service, stub]) => [service, stub.url])) });
});

afterAll(async () => {
  await Promise.all([gateway, ...gateways].map((each) => each?.close()));
  await Promise.all([...stubs.values()].map((stub) => stub.close()));
});

async function call(method: string, path: string, authorization?: string): Promise<{ status: number; body: { error?: { code: string } } & Partial<Echo> }> {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: authorization === undefined ? {} : { authorization },
  });
  return { status: response.status, body: (await response.json()) as { error?: { code: string } } & Partial<Echo> };
}

/** Requests `route`'s service received so far. */
const received = (route: GatewayRoute) => stubs.get(route.service)!.received.length;

describe('operator routes at the gateway', () => {
  it('covers the operations of search, feed and the dashboard', () => {
    expect(new Set(OPERATOR_ROUTES.map(({ route }) => route.prefix))).toEqual(new Set(['/search/index', '/feed/rebuild', '/admin']));
  });

  describe.each(OPERATOR_ROUTES)('$method $route.prefix', ({ route, method, path }) => {
    it('answers 401 auth.missing_token without a token, without calling the service', async () => {
      const before = received(route);
      const { status, body } = await call(method, path);
      expect({ status, code: body.error?.code }).toEqual({ status: 401, code: 'auth.missing_token' });
      expect(received(route)).toBe(before);
    });

    it("answers 403 auth.role_required for an ordinary user's token (or one with roles this code does not know), without calling the service", async () => {
      const before = received(route);
      for (const roles of [undefined, [], ['admin', 'Operator']]) {
        const token = await tokens.token(newId(), roles ? { roles } : {});
        const { status, body } = await call(method, path, `Bearer ${token}`);
        expect({ roles, status, code: body.error?.code }).toEqual({ roles, status: 403, code: 'auth.role_required' });
      }
      expect(received(route)).toBe(before);
    });

    it("answers 401 for an operator's token that is expired or not ours", async () => {
      const expired = await tokens.token(newId(), { roles: ['operator'], expiresIn: Math.floor(Date.now() / 1000) - 60 });
      expect((await call(method, path, `Bearer ${expired}`)).body.error?.code).toBe('auth.token_expired');
      expect((await call(method, path, `Bearer ${await tokens.foreignToken(newId())}`)).status).toBe(401);
    });

    it("forwards an operator's request with the operator's X-User-ID", async () => {
      const operatorId = newId();
      const { status, body } = await call(method, path, `Bearer ${await tokens.token(operatorId, { roles: ['operator'] })}`);
      expect(status).toBe(200);
      expect(body).toMatchObject({ service: route.service, method, url: path });
      expect(body.headers?.['x-user-id']).toBe(operatorId);
    });
  });

  it('lets an operator through the routes every signed-in user may call, too', async () => {
    const { status } = await call('GET', '/feed/users/x', `Bearer ${await tokens.token(newId(), { roles: ['operator'] })}`);
    expect(status).toBe(200);
  });
});

describe('the dashboard sign-in', () => {
  it('is public and leaves the token to the dashboard: forwarded without one, and with one the gateway would refuse', async () => {
    const anonymous = await call('POST', '/admin/session');
    expect(anonymous.status).toBe(200);
    expect(anonymous.body.service).toBe('dashboard');
    expect((await call('POST', '/admin/session', 'Bearer not.a.token')).status).toBe(200);
    // Anything else under /admin is the operator's.
    expect((await call('GET', '/admin/session')).status).toBe(401);
  });

  it('is limited per address like a login', async () => {
    // /admin/session allows 20 per address per minute; a factor of 0.1 makes that 2.
    const limited = await startGateway({ auth: tokens.keys, urls: { dashboard: stubs.get('dashboard')!.url }, env: { GATEWAY_RATE_LIMIT_ROUTE_FACTOR: '0.1' } });
    gateways.push(limited);
    const signIn = () => fetch(`${limited.url}/admin/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect((await signIn()).status).toBe(200);
    expect((await signIn()).status).toBe(200);
    const refused = await signIn();
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('gateway.rate_limited');
  });
});
