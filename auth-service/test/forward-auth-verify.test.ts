import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Roles } from '../src/roles.ts';
import { newAccount, openTestStore, registerAccount, startAuthService, type AuthServiceUnderTest, type Session, type TestStore } from './auth-service-under-test.ts';

/**
 * `GET /auth/verify?access=…` answers an edge proxy's forward authentication (Traefik forwardAuth,
 * Caddy forward_auth) for the access level of the route it matched, as the gateway decides it: only
 * a 2xx lets the request through, and the proxy copies X-User-ID and X-Username onto it.
 */
describe('GET /auth/verify for forward authentication, by access level', () => {
  let store: TestStore;
  let auth: AuthServiceUnderTest;
  let user: Session & { user: { username: string } };
  let operator: Session & { user: { username: string } };

  beforeAll(async () => {
    store = await openTestStore('pglite');
    auth = await startAuthService({ store });
    user = (await registerAccount(auth, newAccount())) as typeof user;
    const operatorAccount = newAccount();
    await registerAccount(auth, operatorAccount);
    await new Roles(store.db).grant(operatorAccount.email, 'operator', 'cli:test');
    const login = await auth.app.inject({ method: 'POST', url: '/auth/login', payload: { login: operatorAccount.email, password: operatorAccount.password } });
    expect(login.statusCode).toBe(200);
    operator = login.json();
  });
  afterAll(async () => {
    await auth?.close();
    await store?.close();
  });

  const verify = (query: string, authorization?: string) =>
    auth.app.inject({ method: 'GET', url: `/auth/verify${query}`, headers: authorization === undefined ? {} : { authorization } });
  const bearer = (token: string) => `Bearer ${token}`;

  it('without access, behaves as protected: 200 with the identity headers for a valid token, 401 without one', async () => {
    const allowed = await verify('', bearer(user.accessToken));
    expect(allowed.statusCode).toBe(200);
    expect(allowed.headers['x-user-id']).toBe(user.user.id);
    expect(allowed.headers['x-username']).toBe(user.user.username);
    const refused = await verify('');
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error.code).toBe('auth.missing_token');
  });

  it('access=public lets a request without a token through with no identity headers', async () => {
    const response = await verify('?access=public');
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-user-id']).toBeUndefined();
    expect(response.headers['x-username']).toBeUndefined();
    expect(response.json()).toEqual({ roles: [] });
  });

  it("access=public with a valid token answers 200 with the token's user", async () => {
    const response = await verify('?access=public', bearer(user.accessToken));
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-user-id']).toBe(user.user.id);
    expect(response.json()).toEqual({ userId: user.user.id, username: user.user.username, roles: [] });
  });

  it('access=public with a token that does not verify is 401, as at the gateway', async () => {
    const response = await verify('?access=public', bearer('not-a-jwt'));
    expect(response.statusCode).toBe(401);
    expect(response.json().error.code).toBe('auth.invalid_token');
    expect(response.headers['x-user-id']).toBeUndefined();
  });

  it('access=protected requires a valid bearer token', async () => {
    expect((await verify('?access=protected')).statusCode).toBe(401);
    expect((await verify('?access=protected', bearer('not-a-jwt'))).statusCode).toBe(401);
    const allowed = await verify('?access=protected', bearer(user.accessToken));
    expect(allowed.statusCode).toBe(200);
    expect(allowed.headers['x-user-id']).toBe(user.user.id);
  });

  it('access=operator is 403 auth.role_required for a valid token without the role, 401 without a token, 200 for an operator', async () => {
    const ordinary = await verify('?access=operator', bearer(user.accessToken));
    expect(ordinary.statusCode).toBe(403);
    expect(ordinary.json().error.code).toBe('auth.role_required');
    expect(ordinary.headers['x-user-id']).toBeUndefined();
    expect((await verify('?access=operator')).statusCode).toBe(401);
    const allowed = await verify('?access=operator', bearer(operator.accessToken));
    expect(allowed.statusCode).toBe(200);
    expect(allowed.headers['x-user-id']).toBe(operator.user.id);
    expect(allowed.json()).toMatchObject({ roles: ['operator'] });
  });

  it('refuses an unknown access level with 400 instead of guessing one', async () => {
    const response = await verify('?access=admin', bearer(user.accessToken));
    expect(response.statusCode).toBe(400);
    expect(response.headers['x-user-id']).toBeUndefined();
  });
});
