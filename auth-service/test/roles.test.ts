import { NotFoundError } from '@civildiy/common';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Roles } from '../src/roles.ts';
import { drivers, newAccount, openTestStore, registerAccount, startAuthService, type AuthServiceUnderTest, type Session, type TestStore } from './auth-service-under-test.ts';

describe.each(drivers)('roles on %s', (driver) => {
  let store: TestStore;
  let auth: AuthServiceUnderTest;
  let roles: Roles;

  beforeAll(async () => {
    store = await openTestStore(driver);
    auth = await startAuthService({ store });
    roles = new Roles(store.db);
  });
  afterAll(async () => {
    await auth?.close();
    await store?.close();
  });

  const claimedRoles = (accessToken: string) => decodeJwt(accessToken).roles;
  const me = async (accessToken: string) => (await auth.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${accessToken}` } })).json();
  const refresh = async (refreshToken: string): Promise<Session> => {
    const response = await auth.app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } });
    expect(response.statusCode).toBe(200);
    return response.json();
  };
  const login = async (account: { email: string; password: string }): Promise<Session & { user: { roles: string[] } }> => {
    const response = await auth.app.inject({ method: 'POST', url: '/auth/login', payload: { login: account.email, password: account.password } });
    expect(response.statusCode).toBe(200);
    return response.json();
  };

  it('gives a new account no roles: its access token carries an empty roles claim and /auth/me shows none', async () => {
    const session = await registerAccount(auth, newAccount());
    expect(claimedRoles(session.accessToken)).toEqual([]);
    expect(session.user).toMatchObject({ roles: [] });
    expect(await me(session.accessToken)).toMatchObject({ id: session.user.id, roles: [] });
  });

  it('carries a grant in the tokens of the next login and refresh (not in those issued before), and shows it on /auth/me and /auth/verify at once', async () => {
    const account = newAccount({ email: `Op-${newAccount().email}` });
    const before = await registerAccount(auth, account);
    const change = await roles.grant(account.email.toUpperCase(), 'operator', 'cli:test');
    expect(change).toEqual({ userId: before.user.id, email: account.email.toLowerCase(), role: 'operator', changed: true });

    expect(claimedRoles(before.accessToken)).toEqual([]);
    expect(await me(before.accessToken)).toMatchObject({ roles: ['operator'] });
    const refreshed = await refresh(before.refreshToken);
    expect(claimedRoles(refreshed.accessToken)).toEqual(['operator']);
    const verified = await auth.app.inject({ method: 'GET', url: '/auth/verify', headers: { authorization: `Bearer ${refreshed.accessToken}` } });
    expect(verified.json()).toMatchObject({ userId: before.user.id, roles: ['operator'] });
    const loggedIn = await login(account);
    expect(claimedRoles(loggedIn.accessToken)).toEqual(['operator']);
    expect(loggedIn.user.roles).toEqual(['operator']);
  });

  it('drops a revoked role from the tokens at the next refresh', async () => {
    const account = newAccount();
    await registerAccount(auth, account);
    await roles.grant(account.email, 'operator', 'cli:test');
    const operator = await login(account);
    expect(claimedRoles(operator.accessToken)).toEqual(['operator']);

    expect(await roles.revoke(account.email, 'operator')).toMatchObject({ role: 'operator', changed: true });
    const refreshed = await refresh(operator.refreshToken);
    expect(claimedRoles(refreshed.accessToken)).toEqual([]);
    expect(await me(refreshed.accessToken)).toMatchObject({ roles: [] });
  });

  it('changes nothing when granting a role held or revoking one not held, and refuses an unknown email with auth.user_not_found', async () => {
    const account = newAccount();
    const { user } = await registerAccount(auth, account);
    expect((await roles.grant(account.email, 'operator', 'cli:first')).changed).toBe(true);
    expect((await roles.grant(account.email, 'operator', 'cli:second')).changed).toBe(false);
    const [holder] = await roles.list(account.email);
    expect(holder).toMatchObject({ userId: user.id, roles: [{ role: 'operator', grantedBy: 'cli:first' }] });
    expect((await roles.revoke(account.email, 'operator')).changed).toBe(true);
    expect((await roles.revoke(account.email, 'operator')).changed).toBe(false);
    await expect(roles.grant(`nobody-${account.email}`, 'operator', 'cli:test')).rejects.toMatchObject({ code: 'auth.user_not_found' });
    await expect(roles.revoke(`nobody-${account.email}`, 'operator')).rejects.toBeInstanceOf(NotFoundError);
    await expect(roles.list(`nobody-${account.email}`)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('lists the accounts holding a role, and one account whatever it holds', async () => {
    const [holder, other] = [newAccount(), newAccount()];
    await registerAccount(auth, holder);
    const { user } = await registerAccount(auth, other);
    await roles.grant(holder.email, 'operator', 'cli:test');
    const all = await roles.list();
    expect(all.map((entry) => entry.email)).toContain(holder.email);
    expect(all.map((entry) => entry.email)).not.toContain(other.email);
    expect(all.every((entry) => entry.roles.length > 0)).toBe(true);
    expect(await roles.list(other.email)).toEqual([{ userId: user.id, email: other.email, username: other.username, roles: [] }]);
  });
});
