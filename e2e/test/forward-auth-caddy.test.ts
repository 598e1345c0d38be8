import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@civildiy/common/testing';
import { caddySkipReason, caddyVersion, startCaddy, type RunningCaddy } from './caddy.ts';
import { PASSWORD, call, registerUser, startSystem, type RegisteredUser, type System } from './system.ts';

const version = caddyVersion();
const skipReason = caddySkipReason(version);

/** What the echo upstream saw of one request. */
interface Echoed {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * The generated Caddyfile in front of real processes: auth-service (forward_auth's
 * `/auth/verify?access=…`) and posts-service; every other service of the route table is a tiny echo
 * upstream in this test, which answers with the headers it received, so the test sees what a service
 * would be told (X-User-ID, X-Username).
 */
describe.skipIf(skipReason !== undefined)(`forward authentication through a real Caddy ${version ?? '(missing)'}, route table from GATEWAY_ROUTES, echo upstream for the services not started${skipReason ? ` (${skipReason})` : ''}`, () => {
  let system: System;
  let echo: Server;
  const echoed: Echoed[] = [];
  let caddy: RunningCaddy | undefined;
  let edge: string;
  let user: RegisteredUser;
  let other: RegisteredUser;

  beforeAll(async () => {
    system = await startSystem({ services: ['auth-service', 'posts-service'] });
    echo = createServer((request, response) => {
      echoed.push({ method: request.method!, url: request.url!, headers: request.headers });
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: request.method, url: request.url, headers: request.headers }));
    });
    const echoPort = await freePort();
    echo.listen(echoPort, '127.0.0.1');
    await once(echo, 'listening');

    const real: Record<string, string> = { 'auth-service': system.urls.auth, 'posts-service': system.urls.posts };
    caddy = await startCaddy((service) => real[service] ?? `127.0.0.1:${echoPort}`);
    edge = caddy.url;

    user = await registerUser(edge, 'edge');
    other = await registerUser(edge, 'other');
  }, 180_000);

  afterAll(async () => {
    await caddy?.stop();
    echo?.close();
    await system?.stop();
  });

  /** The last request the echo upstream saw for `url`. */
  const lastEchoed = (url: string) => echoed.filter((request) => request.url === url).at(-1);

  it('answers a path no entry covers with 404 route_not_found', async () => {
    const response = await call(`${edge}/nowhere/at/all`);
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe('route_not_found');
  });

  it('refuses a protected route without a token with 401 from auth-service, before the service sees it', async () => {
    const url = `/orders?probe=${crypto.randomUUID()}`;
    const response = await call(`${edge}${url}`);
    expect(response.status, JSON.stringify(response.body)).toBe(401);
    expect(response.body.error.code).toBe('auth.missing_token');
    expect(lastEchoed(url)).toBeUndefined();
  });

  it("forwards a request with a valid token with the token's X-User-ID and X-Username", async () => {
    const url = `/orders?probe=${crypto.randomUUID()}`;
    const response = await call(`${edge}${url}`, { token: user.token });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body.headers['x-user-id']).toBe(user.id);
    expect(response.body.headers['x-username']).toBe(user.username);
    expect(lastEchoed(url)?.headers['x-user-id']).toBe(user.id);
  });

  it('removes a client-sent X-User-ID and X-Username on a public route requested without a token', async () => {
    const url = `/feed?probe=${crypto.randomUUID()}`;
    const response = await call(`${edge}${url}`, { headers: { 'x-user-id': other.id, 'x-username': other.username } });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const seen = lastEchoed(url)!.headers;
    expect(seen['x-user-id']).toBeUndefined();
    expect(seen['x-username']).toBeUndefined();
  });

  it("replaces a client-sent X-User-ID naming another user with the token's user, on protected and public routes", async () => {
    for (const route of ['/orders', '/feed']) {
      const url = `${route}?probe=${crypto.randomUUID()}`;
      const response = await call(`${edge}${url}`, { token: user.token, headers: { 'x-user-id': other.id, 'x-username': other.username } });
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      expect(lastEchoed(url)!.headers['x-user-id']).toBe(user.id);
      expect(lastEchoed(url)!.headers['x-username']).toBe(user.username);
    }
  });

  it('refuses a token that does not verify on a public route too (401), as the gateway does', async () => {
    const url = `/feed?probe=${crypto.randomUUID()}`;
    const response = await call(`${edge}${url}`, { token: 'not-a-jwt', headers: { 'x-user-id': user.id } });
    expect(response.status).toBe(401);
    expect(response.body.error.code).toBe('auth.invalid_token');
    expect(lastEchoed(url)).toBeUndefined();
  });

  it('refuses an operator route to an ordinary user with 403 auth.role_required and lets an operator through', async () => {
    const ordinary = await call(`${edge}/admin/overview`, { token: user.token });
    expect(ordinary.status, JSON.stringify(ordinary.body)).toBe(403);
    expect(ordinary.body.error.code).toBe('auth.role_required');
    expect((await call(`${edge}/admin/overview`)).status).toBe(401);

    const operator = await registerUser(edge, 'operator');
    await system.grantRole(operator.email);
    const login = await call(`${edge}/auth/login`, { body: { login: operator.email, password: PASSWORD } });
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    const url = `/admin/overview?probe=${crypto.randomUUID()}`;
    const allowed = await call(`${edge}${url}`, { token: login.body.accessToken as string });
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(200);
    expect(lastEchoed(url)!.headers['x-user-id']).toBe(operator.id);
  });

  it('leaves the token of an auth route to auth-service (verifyToken: false): a login with a stale bearer token still works', async () => {
    const response = await call(`${edge}/auth/login`, { token: 'expired-or-garbage', body: { login: user.email, password: PASSWORD } });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body.user.id).toBe(user.id);
  });

  it('serves real requests of posts-service through the edge: a post created with a token is read back without one', async () => {
    const refused = await call(`${edge}/posts`, { body: { title: 'Not without a token', body: 'x', tags: [] } });
    expect(refused.status).toBe(401);

    const created = await call(`${edge}/posts`, { token: user.token, body: { title: 'A sawhorse from scraps', body: 'Two-by-fours and screws.', tags: ['woodworking'] } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ authorId: user.id, authorUsername: user.username });

    const read = await call(`${edge}/posts/${created.body.postId as string}`);
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect(read.body).toMatchObject({ postId: created.body.postId, title: 'A sawhorse from scraps', authorId: user.id });
  });
});
