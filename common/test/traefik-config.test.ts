import { describe, expect, it } from 'vitest';
import {
  GATEWAY_ROUTES,
  ROUTER_PRIORITY_BASE,
  ROUTE_METHODS,
  SERVICES,
  STRIP_IDENTITY_MIDDLEWARE,
  composeUpstreamUrls,
  pathHasPrefix,
  routeMethods,
  traefikDynamicConfig,
  traefikKvEntries,
  traefikRouterName,
  type GatewayRoute,
  type TraefikDynamicConfig,
} from '@civildiy/common/topology';

const upstreamUrl = composeUpstreamUrls(SERVICES);
const config = traefikDynamicConfig({ upstreamUrl });

/**
 * Evaluates a rule of the generated grammar (Path, PathPrefix and Method matchers, `&&`, `||`,
 * parentheses) for one request, as Traefik's v3 rule syntax defines them: `Path` equal, `PathPrefix`
 * a string prefix, `Method` equal.
 */
function ruleMatches(rule: string, method: string, path: string): boolean {
  const tokens = rule.match(/\(|\)|&&|\|\||(Path|PathPrefix|Method)\(`[^`]*`\)/g) ?? [];
  expect(tokens.join('').replace(/\s/g, '')).toBe(rule.replace(/\s/g, ''));
  let at = 0;
  const or = (): boolean => {
    let value = and();
    while (tokens[at] === '||') {
      at++;
      const right = and();
      value = value || right;
    }
    return value;
  };
  const and = (): boolean => {
    let value = term();
    while (tokens[at] === '&&') {
      at++;
      const right = term();
      value = value && right;
    }
    return value;
  };
  const term = (): boolean => {
    const token = tokens[at++]!;
    if (token === '(') {
      const value = or();
      expect(tokens[at++]).toBe(')');
      return value;
    }
    const [, matcher, argument] = /^(\w+)\(`(.*)`\)$/.exec(token)!;
    if (matcher === 'Path') return path === argument;
    if (matcher === 'PathPrefix') return path.startsWith(argument!);
    return method === argument;
  };
  const value = or();
  expect(at).toBe(tokens.length);
  return value;
}

/** The router Traefik picks: the matching one with the highest priority. */
function traefikPick(generated: TraefikDynamicConfig, method: string, path: string): string | undefined {
  const matching = Object.entries(generated.http.routers).filter(([, router]) => ruleMatches(router.rule, method, path));
  matching.sort(([, a], [, b]) => b.priority! - a.priority!);
  return matching[0]?.[0];
}

/** The entry the gateway picks: the first whose prefix (whole segments) and methods match. */
function gatewayPick(routes: readonly GatewayRoute[], method: string, path: string): GatewayRoute | undefined {
  return routes.find((route) => pathHasPrefix(path, route.prefix) && routeMethods(route).has(method as never));
}

describe('traefikDynamicConfig from the route table', () => {
  it('has a router for every GATEWAY_ROUTES entry, to its service', () => {
    expect(Object.keys(config.http.routers)).toHaveLength(GATEWAY_ROUTES.length);
    for (const route of GATEWAY_ROUTES) {
      const router = config.http.routers[traefikRouterName(route)];
      expect(router, `no router for ${route.prefix} ${route.methods?.join(',') ?? ''}`).toBeDefined();
      expect(router!.service).toBe(route.service);
      expect(router!.rule).toContain(`Path(\`${route.prefix}\`)`);
      expect(config.http.services[route.service]).toEqual({ loadBalancer: { servers: [{ url: upstreamUrl(route.service) }] } });
    }
  });

  it('makes Traefik pick the entry the gateway picks, for every prefix, sub-path and lookalike with every method', () => {
    const paths = GATEWAY_ROUTES.flatMap(({ prefix }) => [prefix, `${prefix}/x`, `${prefix}/x/y`, `${prefix}x`, `${prefix}/`]);
    let compared = 0;
    for (const path of [...paths, '/', '/unknown', '/Posts']) {
      for (const method of ROUTE_METHODS) {
        const expected = gatewayPick(GATEWAY_ROUTES, method, path);
        expect(traefikPick(config, method, path), `${method} ${path}`).toBe(expected && traefikRouterName(expected));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(500);
  });

  it('gives earlier entries higher priorities, all above ROUTER_PRIORITY_BASE', () => {
    const priorities = GATEWAY_ROUTES.map((route) => config.http.routers[traefikRouterName(route)]!.priority!);
    expect(priorities).toEqual([...priorities].sort((a, b) => b - a));
    expect(new Set(priorities).size).toBe(priorities.length);
    expect(Math.min(...priorities)).toBeGreaterThan(ROUTER_PRIORITY_BASE);
  });

  it('removes client-sent X-User-ID and X-Username first on every router (an empty value removes a header)', () => {
    expect(config.http.middlewares[STRIP_IDENTITY_MIDDLEWARE]).toEqual({ headers: { customRequestHeaders: { 'X-User-ID': '', 'X-Username': '' } } });
    for (const router of Object.values(config.http.routers)) expect(router.middlewares![0]).toBe(STRIP_IDENTITY_MIDDLEWARE);
  });

  it("asks auth-service's /auth/verify with the entry's access level, copying the identity headers and trusting no client X-Forwarded-*", () => {
    for (const route of GATEWAY_ROUTES) {
      const chain = config.http.routers[traefikRouterName(route)]!.middlewares!;
      const auth = chain.filter((name) => name.startsWith('forward-auth-'));
      if (route.verifyToken === false) {
        expect(auth, route.prefix).toEqual([]);
        continue;
      }
      expect(auth, route.prefix).toEqual([`forward-auth-${route.access}`]);
    }
    for (const access of ['public', 'protected', 'operator']) {
      expect(config.http.middlewares[`forward-auth-${access}`]).toEqual({
        forwardAuth: {
          address: `http://auth-service:8101/auth/verify?access=${access}`,
          trustForwardHeader: false,
          authResponseHeaders: ['X-User-ID', 'X-Username'],
        },
      });
    }
  });

  it("turns an entry's perAddress budget into a per-address rate limit, counted before the token check", () => {
    const login = GATEWAY_ROUTES.find((route) => route.prefix === '/auth/login')!;
    const router = config.http.routers[traefikRouterName(login)]!;
    expect(router.middlewares).toEqual([STRIP_IDENTITY_MIDDLEWARE, 'auth-login-post-rate-limit-address']);
    expect(config.http.middlewares['auth-login-post-rate-limit-address']).toEqual({ rateLimit: { average: login.rateLimit!.perAddress, period: '60s', burst: login.rateLimit!.perAddress } });

    const routes: GatewayRoute[] = [{ prefix: '/things', service: 'order-service', access: 'protected', rateLimit: { perAddress: 30, perUser: 5, windowSeconds: 10 } }];
    const limited = traefikDynamicConfig({ upstreamUrl, routes });
    expect(limited.http.routers.things!.middlewares).toEqual([STRIP_IDENTITY_MIDDLEWARE, 'things-rate-limit-address', 'forward-auth-protected', 'things-rate-limit-user']);
    expect(limited.http.middlewares['things-rate-limit-address']).toEqual({ rateLimit: { average: 30, period: '10s', burst: 30 } });
    // After forwardAuth, X-User-ID is the verified one: the per-user budget is keyed by it.
    expect(limited.http.middlewares['things-rate-limit-user']).toEqual({ rateLimit: { average: 5, period: '10s', burst: 5, sourceCriterion: { requestHeaderName: 'X-User-ID' } } });
  });

  it('leaves out a perUser budget on a public entry, where anonymous requests would share one bucket', () => {
    const routes: GatewayRoute[] = [{ prefix: '/things', service: 'order-service', methods: ['GET'], access: 'public', rateLimit: { perUser: 5 } }];
    const generated = traefikDynamicConfig({ upstreamUrl, routes });
    expect(generated.http.routers['things-get']!.middlewares).toEqual([STRIP_IDENTITY_MIDDLEWARE, 'forward-auth-public']);
    expect(Object.keys(generated.http.middlewares).filter((name) => name.includes('rate-limit'))).toEqual([]);
  });

  it('refuses two entries whose router names would differ only in case or punctuation (Traefik KV keys ignore case)', () => {
    const routes: GatewayRoute[] = [
      { prefix: '/a-b', service: 'order-service', access: 'public' },
      { prefix: '/A/b', service: 'order-service', access: 'public' },
    ];
    expect(() => traefikDynamicConfig({ upstreamUrl, routes })).toThrow(/share the router name a-b/);
  });

  it('refuses a service the topology does not list, instead of pointing a router nowhere', () => {
    const routes: GatewayRoute[] = [{ prefix: '/ghosts', service: 'ghost-service', access: 'public' }];
    expect(() => traefikDynamicConfig({ upstreamUrl, routes })).toThrow(/ghost-service/);
  });
});

describe('traefikKvEntries', () => {
  const entries = traefikKvEntries(config);

  it("flattens the configuration into Traefik's KV keys, lists as /0, /1, values as strings", () => {
    const posts = traefikRouterName(GATEWAY_ROUTES.find((route) => route.prefix === '/posts' && !route.methods)!);
    expect(entries[`traefik/http/routers/${posts}/rule`]).toBe(config.http.routers[posts]!.rule);
    expect(entries[`traefik/http/routers/${posts}/priority`]).toBe(String(config.http.routers[posts]!.priority));
    expect(entries[`traefik/http/routers/${posts}/middlewares/0`]).toBe(STRIP_IDENTITY_MIDDLEWARE);
    expect(entries[`traefik/http/routers/${posts}/middlewares/1`]).toBe('forward-auth-protected');
    expect(entries['traefik/http/services/posts-service/loadBalancer/servers/0/url']).toBe('http://posts-service:8103');
    expect(entries['traefik/http/middlewares/forward-auth-public/forwardAuth/trustForwardHeader']).toBe('false');
    expect(entries['traefik/http/middlewares/forward-auth-public/forwardAuth/authResponseHeaders/1']).toBe('X-Username');
    expect(entries['traefik/http/middlewares/strip-identity/headers/customRequestHeaders/X-User-ID']).toBe('');
  });

  it('holds every leaf of the configuration: rebuilding the tree from the keys gives it back (as strings)', () => {
    const rebuilt: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(entries)) {
      const parts = key.split('/').slice(1);
      let node = rebuilt as Record<string, unknown>;
      parts.forEach((part, index) => {
        if (index === parts.length - 1) node[part] = value;
        else node = (node[part] ??= /^\d+$/.test(parts[index + 1]!) ? [] : {}) as Record<string, unknown>;
      });
    }
    const asStrings = JSON.parse(JSON.stringify(config, (_key, value) => (typeof value === 'number' || typeof value === 'boolean' ? String(value) : value)));
    expect(rebuilt).toEqual(asStrings);
  });

  it('uses the given root key', () => {
    expect(Object.keys(traefikKvEntries(config, 'edge/traefik')).every((key) => key.startsWith('edge/traefik/http/'))).toBe(true);
  });

  it('refuses a list item with a comma, which Traefik would split into two', () => {
    expect(() => traefikKvEntries({ http: { routers: { r: { middlewares: ['a,b'] } } } })).toThrow(/comma/);
  });
});
