import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { ServiceNotFoundError, StaticDiscovery, serviceUrlVariable } from '@civildiy/common/discovery';
import { createTestTokens } from '@civildiy/common/testing';
import { GATEWAY_ROUTES, PLANNED_SERVICES, ROUTE_METHODS, SERVICES, pathHasPrefix, routeMethods, type RouteMethod } from '@civildiy/common/topology';
import { ROUTED_SERVICES } from '../src/config.ts';
import { startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type Echo, type StubUpstream } from './stub-upstream.ts';

describe('the route table', () => {
  it('names only services that exist or are planned, and a planned one is not already running', () => {
    const running = new Set(SERVICES.map((service) => service.name));
    for (const route of GATEWAY_ROUTES) {
      expect(running.has(route.service) || PLANNED_SERVICES.includes(route.service), `${route.prefix} → ${route.service}`).toBe(true);
    }
    for (const planned of PLANNED_SERVICES) expect(running.has(planned), `${planned} runs now: take it off PLANNED_SERVICES`).toBe(false);
  });

  it('has no entry shadowed by an earlier one (first match wins)', () => {
    GATEWAY_ROUTES.forEach((later, j) => {
      for (const earlier of GATEWAY_ROUTES.slice(0, j)) {
        if (!pathHasPrefix(later.prefix, earlier.prefix)) continue;
        const earlierMethods = routeMethods(earlier);
        const unreachable = [...routeMethods(later)].every((method) => earlierMethods.has(method));
        expect(unreachable, `${later.prefix} (${[...routeMethods(later)].join(',')}) is shadowed by ${earlier.prefix}`).toBe(false);
      }
    });
  });

  it("has clean prefixes that leave the gateway's own /health, /docs and /metrics alone", () => {
    for (const route of GATEWAY_ROUTES) {
      expect(route.prefix).toMatch(/^\/[A-Za-z0-9._~\-/]*[^/]$/);
      for (const own of ['/health', '/health/ready', '/docs', '/docs/json', '/metrics']) {
        expect(pathHasPrefix(own, route.prefix) || pathHasPrefix(route.prefix, own), `${route.prefix} overlaps ${own}`).toBe(false);
      }
    }
  });

  it('checks the token of every entry that needs one (protected or operator): none of them skips it', () => {
    for (const route of GATEWAY_ROUTES.filter((entry) => entry.access !== 'public')) {
      expect(route.verifyToken ?? true, `${route.prefix} (${route.access}) has verifyToken: false`).toBe(true);
    }
  });

  it('puts the operations routes behind the operator role', () => {
    const accessOf = (method: RouteMethod, path: string) => GATEWAY_ROUTES.find((route) => pathHasPrefix(path, route.prefix) && routeMethods(route).has(method))?.access;
    for (const [method, path] of [
      ['GET', '/search/index/status'],
      ['POST', '/search/index/failed/redrive'],
      ['POST', '/search/index/reindex'],
      ['DELETE', '/search/index/reindex'],
      ['POST', '/feed/rebuild'],
      ['GET', '/feed/rebuild'],
      ['DELETE', '/feed/rebuild'],
      ['GET', '/admin'],
      ['GET', '/admin/api/dead-letters'],
      ['POST', '/admin/api/dead-letters/x/redrive'],
    ] as const) {
      expect(accessOf(method, path), `${method} ${path}`).toBe('operator');
    }
    // Signing in to the dashboard, and the public reads beside the operations routes.
    expect(accessOf('POST', '/admin/session')).toBe('public');
    expect(accessOf('GET', '/feed')).toBe('public');
    expect(accessOf('GET', '/feed/users/x')).toBe('public');
    expect(accessOf('GET', '/search')).toBe('public');
  });

  it('matches prefixes on whole path segments', () => {
    expect(pathHasPrefix('/posts', '/posts')).toBe(true);
    expect(pathHasPrefix('/posts/', '/posts')).toBe(true);
    expect(pathHasPrefix('/posts/1/comments', '/posts')).toBe(true);
    expect(pathHasPrefix('/postscript', '/posts')).toBe(false);
  });
});

describe("the gateway's router", () => {
  let stubs: StubUpstream[] = [];
  let gateway: GatewayUnderTest;
  let authorization: string;

  beforeAll(async () => {
    const tokens = await createTestTokens();
    // An operator's: it passes every entry, protected and operator ones alike.
    authorization = `Bearer ${await tokens.token(newId(), { roles: ['operator'] })}`;
    stubs = await Promise.all(ROUTED_SERVICES.map((service) => startStubUpstream(service)));
    gateway = await startGateway({ auth: tokens.keys, urls: Object.fromEntries(ROUTED_SERVICES.map((service, i) => [service, stubs[i]!.url])) });
  });

  afterAll(async () => {
    await gateway?.close();
    await Promise.all(stubs.map((stub) => stub.close()));
  });

  it("sends every method, at every prefix and under it, where the table's first match says, or answers 405 with the methods it has", async () => {
    for (const prefix of new Set(GATEWAY_ROUTES.map((route) => route.prefix))) {
      for (const path of [prefix, `${prefix}/x`]) {
        for (const method of ROUTE_METHODS) {
          const first = GATEWAY_ROUTES.find((route) => pathHasPrefix(path, route.prefix) && routeMethods(route).has(method));
          const response = await fetch(`${gateway.url}${path}`, { method, headers: { authorization } });
          const where = `${method} ${path}`;
          if (first) {
            expect(response.status, where).toBe(200);
            if (method !== 'HEAD') expect(((await response.json()) as Echo).service, where).toBe(first.service);
          } else {
            const allow = new Set(GATEWAY_ROUTES.filter((route) => pathHasPrefix(path, route.prefix)).flatMap((route) => [...routeMethods(route)]));
            expect(response.status, where).toBe(405);
            expect(new Set(response.headers.get('allow')!.split(', ')), where).toEqual(allow);
            await response.body?.cancel();
          }
        }
      }
    }
  });
});

describe('static discovery', () => {
  it('derives each service\'s URL variable from its port variable, or from its name for a planned service', () => {
    const names = ['auth-service', 'profile-service', 'posts-service', 'feed-service', 'order-service', 'notification-service', 'search-service'];
    expect(names.map(serviceUrlVariable)).toEqual(['AUTH_URL', 'PROFILE_URL', 'POSTS_URL', 'FEED_URL', 'ORDER_URL', 'NOTIFICATION_URL', 'SEARCH_URL']);
  });

  it('prefers <NAME>_URL, then the port variable, then the default port', async () => {
    const discovery = new StaticDiscovery({ env: { POSTS_URL: 'http://posts.internal:9000/', FEED_PORT: '9104' } });
    expect(await discovery.resolve('posts-service')).toBe('http://posts.internal:9000');
    expect(await discovery.resolve('feed-service')).toBe('http://127.0.0.1:9104');
    expect(await discovery.resolve('order-service')).toBe('http://127.0.0.1:8105');
  });

  it('spreads calls over several instances round-robin', async () => {
    const discovery = new StaticDiscovery({ env: { FEED_URL: 'http://a:1,http://b:2' } });
    expect(await discovery.instances('feed-service')).toEqual(['http://a:1', 'http://b:2']);
    const picks = [await discovery.resolve('feed-service'), await discovery.resolve('feed-service'), await discovery.resolve('feed-service')];
    expect(picks).toEqual(['http://a:1', 'http://b:2', 'http://a:1']);
  });

  it('does not find a service with neither a URL nor a known port, and finds it once its <NAME>_URL is set', async () => {
    await expect(new StaticDiscovery({ env: {} }).resolve('inventory-service')).rejects.toBeInstanceOf(ServiceNotFoundError);
    expect(await new StaticDiscovery({ env: {} }).instances('inventory-service')).toEqual([]);
    expect(await new StaticDiscovery({ env: { INVENTORY_URL: 'http://127.0.0.1:8109' } }).resolve('inventory-service')).toBe('http://127.0.0.1:8109');
  });

  it('refuses a malformed URL, naming its variable', () => {
    expect(() => new StaticDiscovery({ env: { AUTH_URL: 'auth:8101' } })).toThrow(/AUTH_URL/);
    expect(() => new StaticDiscovery({ env: { AUTH_URL: 'http://auth:8101/api' } })).toThrow(/AUTH_URL/);
  });
});
