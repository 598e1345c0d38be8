import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@civildiy/common';
import { createTestTokens, type TestTokens } from '@civildiy/common/testing';
import { GATEWAY_ROUTES, pathHasPrefix, routeMethods, type GatewayRoute, type RouteMethod } from '@civildiy/common/topology';
import { startGateway, type GatewayUnderTest } from './gateway-under-test.ts';
import { startStubUpstream, type Echo, type StubUpstream } from './stub-upstream.ts';

/**
 * Sends `target` exactly as written (fetch would resolve dot segments and turn `\` into `/` first).
 * The body is parsed as JSON when there is one.
 */
async function send(base: string, method: string, target: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Json }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const request = http.request({ hostname, port, method, path: target, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: response.statusCode!, body: text ? JSON.parse(text) : undefined });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

// Answers are read field by field.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const CASE_METHODS: readonly RouteMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

function firstMatch(method: RouteMethod, path: string): GatewayRoute | undefined {
  return GATEWAY_ROUTES.find((route) => pathHasPrefix(path, route.prefix) && routeMethods(route).has(method));
}

/** Every entry of the table that needs a token (protected or operator), with a method and a path under it that the entry serves. */
const PROTECTED = GATEWAY_ROUTES.filter((route) => route.access !== 'public').map((route) => {
  const path = `${route.prefix}/probe`;
  const method = CASE_METHODS.find((candidate) => firstMatch(candidate, path) === route);
  if (!method) throw new Error(`no method reaches the protected entry ${route.prefix}`);
  return { route, method, path };
});

/** Public paths the tests below read through a service's stub, besides its protected prefixes (its stub serves only these). */
const PUBLIC_PATHS: Record<string, readonly string[]> = { 'feed-service': ['/feed/users'] };

/** What the gateway must do with a spelling of a protected path. */
type Outcome =
  /** Route it as the canonical path: 401 without a token, forwarded as `<prefix>/probe` with one. */
  | 'canonical'
  /** 400 `gateway.invalid_path`, token or not. */
  | 'invalid'
  /** 404, token or not: a case variant is not the entry's path. */
  | 'not_found'
  /** Decoded once it is another path: never the protected one, token or not. */
  | 'other_path';

interface Variant {
  kind: string;
  target: string;
  outcome: Outcome;
}

const hex = (char: string) => char.charCodeAt(0).toString(16);

/** Spellings of `<prefix>/probe`, generated so that a new protected prefix is covered as it is added. */
function variantsOf(prefix: string): Variant[] {
  const path = `${prefix}/probe`;
  const segments = prefix.split('/').slice(1);
  const last = segments.at(-1)!;
  const head = segments
    .slice(0, -1)
    .map((segment) => `/${segment}`)
    .join('');
  const afterFirst = path.indexOf('/', 1);
  const firstSlashAs = (text: string) => `${path.slice(0, afterFirst)}${text}${path.slice(afterFirst + 1)}`;
  const variants: Variant[] = [
    { kind: 'a percent-encoded letter', target: `${head}/%${hex(last[0]!)}${last.slice(1)}/probe`, outcome: 'canonical' },
    {
      kind: 'all letters encoded, mixed-case hex',
      target: `${head}/${[...last].map((char, i) => `%${i % 2 === 0 ? hex(char).toUpperCase() : hex(char)}`).join('')}/probe`,
      outcome: 'canonical',
    },
    { kind: 'a trailing slash', target: `${path}/`, outcome: 'canonical' },
    { kind: 'repeated slashes', target: `//${[...segments, 'probe'].join('//')}//`, outcome: 'canonical' },
    { kind: 'an absolute-form target', target: `http://gateway.example${path}`, outcome: 'canonical' },
    { kind: 'a double-encoded letter (%25xx)', target: `${head}/%25${hex(last[0]!)}${last.slice(1)}/probe`, outcome: 'other_path' },
    { kind: 'an encoded slash', target: firstSlashAs('%2F'), outcome: 'invalid' },
    { kind: 'an encoded slash in lower case', target: firstSlashAs('%2f'), outcome: 'invalid' },
    { kind: 'an encoded backslash', target: firstSlashAs('%5C'), outcome: 'invalid' },
    { kind: 'a raw backslash', target: firstSlashAs('\\'), outcome: 'invalid' },
    { kind: 'a dot segment', target: `${head}/./${last}/probe`, outcome: 'invalid' },
    { kind: 'a dot-dot out of a public prefix', target: `/posts/..${path}`, outcome: 'invalid' },
    { kind: 'an encoded dot-dot segment', target: `/feed/%2e%2E${path}`, outcome: 'invalid' },
    { kind: 'overlong UTF-8 dots', target: `/feed/%c0%ae%c0%ae${path}`, outcome: 'invalid' },
    { kind: 'an escape that is not UTF-8', target: `${head}/%ff${last}/probe`, outcome: 'invalid' },
    { kind: 'a malformed escape', target: `${path}%zz`, outcome: 'invalid' },
    { kind: 'an encoded NUL', target: `${path}%00`, outcome: 'invalid' },
    { kind: 'upper case', target: path.toUpperCase(), outcome: 'not_found' },
    { kind: 'a capitalised segment', target: `${head}/${last[0]!.toUpperCase()}${last.slice(1)}/probe`, outcome: 'not_found' },
    { kind: 'a percent-encoded upper-case letter', target: `${head}/%${hex(last[0]!.toUpperCase())}${last.slice(1)}/probe`, outcome: 'not_found' },
  ];
  // Letters a Unicode case-insensitive comparison takes for i and s (ı and ſ upper-case to I and S).
  if (prefix.includes('i')) variants.push({ kind: 'a dotless ı for i', target: `${prefix.replace('i', '%C4%B1')}/probe`, outcome: 'not_found' });
  if (prefix.includes('s')) variants.push({ kind: 'a long ſ for s', target: `${prefix.replace('s', '%C5%BF')}/probe`, outcome: 'not_found' });
  return variants;
}

let tokens: TestTokens;
/** A user's token, and an operator's. */
let bearers: Record<'protected' | 'operator', Record<string, string>>;
/** Per service with protected entries: a stub serving only those prefixes (and its {@link PUBLIC_PATHS}), as the real service would. */
const upstreams = new Map<string, StubUpstream>();
let gateway: GatewayUnderTest;

/** The token that passes `route`. */
const bearerFor = (route: GatewayRoute) => bearers[route.access === 'operator' ? 'operator' : 'protected'];

beforeAll(async () => {
  tokens = await createTestTokens();
  bearers = {
    protected: { authorization: `Bearer ${await tokens.token(newId())}` },
    operator: { authorization: `Bearer ${await tokens.token(newId(), { roles: ['operator'] })}` },
  };
  const services = [...new Set(PROTECTED.map(({ route }) => route.service))];
  await Promise.all(
    services.map(async (service) => {
      const only = [...PROTECTED.filter(({ route }) => route.service === service).map(({ route }) => route.prefix), ...(PUBLIC_PATHS[service] ?? [])];
      upstreams.set(service, await startStubUpstream(service, { only }));
    }),
  );
  gateway = await startGateway({ auth: tokens.keys, urls: Object.fromEntries([...upstreams].map(([service, stub]) => [service, stub.url])) });
});

afterAll(async () => {
  await gateway?.close();
  await Promise.all([...upstreams.values()].map((stub) => stub?.close()));
});

/** Requests the stub served under `prefix` (the protected resource). */
function served(stub: StubUpstream, prefix: string): number {
  return [...stub.hits].filter(([path]) => pathHasPrefix(path, prefix)).reduce((sum, [, count]) => sum + count, 0);
}

describe.each(PROTECTED)('a protected entry: $method $route.prefix', ({ route, method, path }) => {
  const variants = variantsOf(route.prefix);
  const upstream = () => upstreams.get(route.service)!;
  const bearer = () => bearerFor(route);

  it.each(variants.filter((variant) => variant.outcome === 'canonical'))(
    'routes $kind ($target) as the canonical path: 401 without a token, forwarded as the canonical path with a token that passes the entry, query string untouched',
    async ({ target }) => {
      const query = '?q=a%2Fb+c%zz&next=../up&empty=';
      const before = served(upstream(), route.prefix);
      const anonymous = await send(gateway.url, method, target + query);
      expect(anonymous.status).toBe(401);
      expect(anonymous.body).toMatchObject({ error: { code: 'auth.missing_token' } });
      expect(served(upstream(), route.prefix)).toBe(before);

      const signedIn = await send(gateway.url, method, target + query, bearer());
      expect(signedIn.status).toBe(200);
      expect((signedIn.body as Echo).url).toBe(path + query);
      expect((signedIn.body as Echo).method).toBe(method);
    },
  );

  it.each(variants.filter((variant) => variant.outcome === 'invalid'))('refuses $kind ($target) with 400 gateway.invalid_path, token or not', async ({ target }) => {
    const before = upstream().received.length;
    for (const headers of [{}, bearer()]) {
      const { status, body } = await send(gateway.url, method, target, headers);
      expect(status).toBe(400);
      expect(body).toMatchObject({ error: { code: 'gateway.invalid_path' } });
    }
    expect(upstream().received.length).toBe(before);
  });

  it.each(variants.filter((variant) => variant.outcome === 'not_found'))('does not route $kind ($target): 404 route_not_found, token or not', async ({ target }) => {
    const before = upstream().received.length;
    for (const headers of [{}, bearer()]) {
      const { status, body } = await send(gateway.url, method, target, headers);
      expect(status).toBe(404);
      expect(body).toMatchObject({ error: { code: 'route_not_found' } });
    }
    expect(upstream().received.length).toBe(before);
  });

  it.each(variants.filter((variant) => variant.outcome === 'other_path'))(
    'decodes $kind ($target) exactly once: whatever serves it, it is not the protected path, token or not',
    async ({ target }) => {
      const before = { served: served(upstream(), route.prefix), received: upstream().received.length };
      for (const headers of [{}, bearer()]) {
        const { status } = await send(gateway.url, method, target, headers);
        expect([401, 404]).toContain(status);
      }
      expect(served(upstream(), route.prefix)).toBe(before.served);
      // Forwarded (under a public entry) it keeps its escaped %: the service decodes it once to the same text.
      for (const url of upstream().received.slice(before.received)) expect(url).toContain('%25');
    },
  );
});

describe('paths that legitimately hold escaped characters', () => {
  it('forwards a public path with escaped characters canonically: upper-case hex, unreserved characters plain, reserved ones escaped; the query untouched', async () => {
    const profiles = upstreams.get('profile-service')!;
    const query = "?q=a%2Fb+c&tag=%c3%a9&quote='x'&next=../up";
    const { status, body } = await send(gateway.url, 'GET', `/profiles/J%c3%bcrgen%20M%C3%BCller%7e:@'${query}`);
    expect(status).toBe(200);
    expect((body as Echo).url).toBe(`/profiles/J%C3%BCrgen%20M%C3%BCller~%3A%40%27${query}`);
    expect(profiles.hits.get('/profiles/J%C3%BCrgen%20M%C3%BCller~%3A%40%27')).toBe(1);
  });

  it('keeps an escaped % as one: %2525 reaches the service as %2525', async () => {
    const { body } = await send(gateway.url, 'GET', '/feed/users/100%2525');
    expect((body as Echo).url).toBe('/feed/users/100%2525');
  });
});

describe('segments that start or end with ..', () => {
  it('are refused with 400 gateway.invalid_path rather than forwarded (reply-from takes them for traversal)', async () => {
    for (const target of ['/feed/users/..x', '/feed/users/x../y']) {
      const { status, body } = await send(gateway.url, 'GET', target);
      expect({ target, status, code: body.error.code }).toEqual({ target, status: 400, code: 'gateway.invalid_path' });
    }
    expect((await send(gateway.url, 'GET', '/feed/users/x..')).status).toBe(200);
  });
});

describe("the gateway's own routes", () => {
  it('answer a spelling of their path as they answer the path itself', async () => {
    for (const target of ['/health/live', '/health/live/', '//health//live', '/%68ealth/liv%65']) {
      const { status, body } = await send(gateway.url, 'GET', target);
      expect({ target, status, body }).toEqual({ target, status: 200, body: { status: 'ok' } });
    }
  });

  it('are not reached through dot segments or case variants', async () => {
    for (const target of ['/health/./live', '/docs/static/%2e%2e/json', '/posts/../health/live']) {
      const { status, body } = await send(gateway.url, 'GET', target);
      expect({ target, status, code: body.error.code }).toEqual({ target, status: 400, code: 'gateway.invalid_path' });
    }
    for (const target of ['/Health/live', '/DOCS/json']) {
      const { status, body } = await send(gateway.url, 'GET', target);
      expect({ target, status, code: body.error.code }).toEqual({ target, status: 404, code: 'route_not_found' });
    }
  });
});

describe('a request injected into the app (no socket)', () => {
  it('is routed on its canonical path too: an encoded protected path needs a token, an invalid one is a 400', async () => {
    const canonical = await gateway.app.inject({ method: 'GET', url: '/feed/users/x?q=1' });
    expect(canonical.statusCode).toBe(200);
    expect((canonical.json() as Echo).url).toBe('/feed/users/x?q=1');
    for (const url of ['/search/%69ndex/probe', '/search/index/probe/', '/search//index/probe']) {
      const response = await gateway.app.inject({ method: 'GET', url });
      expect({ url, status: response.statusCode, code: response.json().error.code }).toEqual({ url, status: 401, code: 'auth.missing_token' });
    }
    const invalid = await gateway.app.inject({ method: 'GET', url: '/search/%2findex/probe' });
    expect(invalid.json().error.code).toBe('gateway.invalid_path');
  });
});
