import { describe, expect, it } from 'vitest';
import { GATEWAY_ROUTES, caddyfileFromRoutes, traefikRouterName, type GatewayRoute } from '@civildiy/common/topology';

const upstream = (service: string) => `${service}:9000`;

/** The body of the `handle @<name> { … }` block of `caddyfile`. */
function handleBlock(caddyfile: string, name: string): string {
  const start = caddyfile.indexOf(`\thandle @${name} {\n`);
  expect(start, `no handle block for ${name}`).toBeGreaterThan(-1);
  return caddyfile.slice(start, caddyfile.indexOf('\n\t}\n', start));
}

describe('caddyfileFromRoutes', () => {
  const caddyfile = caddyfileFromRoutes({ port: 8080, upstream });

  it('has one handle block per GATEWAY_ROUTES entry, in table order (the first match wins), then a 404 for the rest', () => {
    const order = [...caddyfile.matchAll(/^\thandle @([\w-]+) \{$/gm)].map((match) => match[1]);
    expect(order).toEqual(GATEWAY_ROUTES.map(traefikRouterName));
    expect(caddyfile.trimEnd().endsWith('\t\trespond `{"error":{"code":"route_not_found","message":"No route for this path"}}` 404\n\t}\n}')).toBe(true);
  });

  it('matches whole segments and the entry methods, GET with HEAD', () => {
    expect(caddyfile).toContain('\t@posts-get {\n\t\tpath /posts /posts/*\n\t\tmethod GET HEAD\n\t}');
    expect(caddyfile).toContain('\t@posts {\n\t\tpath /posts /posts/*\n\t}');
  });

  it("removes client identity headers, then asks /auth/verify with the entry's access, then proxies, in that order", () => {
    const block = handleBlock(caddyfile, 'feed-rebuild');
    const steps = ['request_header -X-User-ID', 'request_header -X-Username', 'forward_auth auth-service:9000 {', 'uri /auth/verify?access=operator', 'copy_headers X-User-ID X-Username', 'reverse_proxy feed-service:9000'];
    const positions = steps.map((step) => block.indexOf(step));
    expect(positions.every((position) => position > -1), block).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(block).toContain('\t\troute {');
  });

  it('leaves the token of a verifyToken: false entry to its service (no forward_auth)', () => {
    const block = handleBlock(caddyfile, 'auth-login-post');
    expect(block).toContain('request_header -X-User-ID');
    expect(block).not.toContain('forward_auth');
    expect(block).toContain('reverse_proxy auth-service:9000');
  });

  it('uses the given admin address and auth-service address', () => {
    const custom = caddyfileFromRoutes({ port: 8080, upstream, admin: '127.0.0.1:2999', authUpstream: '10.0.0.9:8101', bindHost: '127.0.0.1' });
    expect(custom).toContain('\tadmin 127.0.0.1:2999\n');
    expect(custom).toContain('\tbind 127.0.0.1\n');
    expect(custom).toContain('forward_auth 10.0.0.9:8101 {');
  });

  it('refuses a prefix that is not a plain Caddyfile token', () => {
    const routes: GatewayRoute[] = [{ prefix: '/two words', service: 'order-service', access: 'public' }];
    expect(() => caddyfileFromRoutes({ port: 8080, upstream, routes })).toThrow(/plain Caddyfile token/);
  });
});
