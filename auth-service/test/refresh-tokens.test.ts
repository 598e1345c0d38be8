import { createHash } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refreshTokens } from '../src/db/schema.ts';
import { drivers, newAccount, openTestStore, startAuthService, type AuthServiceUnderTest, type TestStore } from './auth-service-under-test.ts';

describe.each(drivers)('refresh tokens on %s', (driver) => {
  let store: TestStore;
  let auth: AuthServiceUnderTest;

  beforeAll(async () => {
    store = await openTestStore(driver);
    auth = await startAuthService({ store });
  });
  afterAll(async () => {
    await auth?.close();
    await store?.close();
  });

  const session = async () => (await auth.app.inject({ method: 'POST', url: '/auth/register', payload: newAccount() })).json();
  const refresh = (refreshToken: string) => auth.app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } });
  const logout = (refreshToken: string) => auth.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken } });
  const me = (accessToken: string) => auth.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${accessToken}` } });

  it('exchanges a refresh token for a new working pair', async () => {
    const first = await session();
    const response = await refresh(first.refreshToken);
    expect(response.statusCode).toBe(200);
    const next = response.json();
    expect(Object.keys(next).sort()).toEqual(['accessToken', 'deviceToken', 'expiresIn', 'refreshToken']);
    expect(next.refreshToken).not.toBe(first.refreshToken);
    expect((await me(next.accessToken)).json().id).toBe(first.user.id);
    const again = await refresh(next.refreshToken);
    expect(again.statusCode).toBe(200);
  });

  it('stores only the SHA-256 of a refresh token', async () => {
    const { refreshToken, user } = await session();
    const rows = await store.db.select().from(refreshTokens).where(eq(refreshTokens.userId, user.id));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.tokenHash).toBe(createHash('sha256').update(refreshToken).digest('hex'));
    expect(JSON.stringify(rows)).not.toContain(refreshToken);
  });

  it('when a rotated token is presented again, revokes the whole family: the newest token stops working too', async () => {
    const first = await session();
    const second = (await refresh(first.refreshToken)).json();
    const third = (await refresh(second.refreshToken)).json();

    const reused = await refresh(first.refreshToken);
    expect(reused.statusCode).toBe(401);
    expect(reused.json().error.code).toBe('auth.refresh_reused');

    const newest = await refresh(third.refreshToken);
    expect(newest.statusCode).toBe(401);
    expect(newest.json().error.code).toBe('auth.invalid_refresh_token');
  });

  it('a reuse in one session leaves the user’s other sessions alone', async () => {
    const account = newAccount();
    const first = (await auth.app.inject({ method: 'POST', url: '/auth/register', payload: account })).json();
    const other = (await auth.app.inject({ method: 'POST', url: '/auth/login', payload: { login: account.email, password: account.password } })).json();
    await refresh(first.refreshToken);
    expect((await refresh(first.refreshToken)).statusCode).toBe(401);
    expect((await refresh(other.refreshToken)).statusCode).toBe(200);
  });

  it('when two refreshes of one token race, exactly one gets a new pair', async () => {
    const first = await session();
    const responses = await Promise.all([refresh(first.refreshToken), refresh(first.refreshToken)]);
    expect(responses.map((r) => r.statusCode).sort()).toEqual([200, 401]);
    expect(responses.find((r) => r.statusCode === 401)!.json().error.code).toBe('auth.refresh_reused');
  });

  it('answers 401 auth.invalid_refresh_token for an unknown and for an expired token', async () => {
    const unknown = await refresh('x'.repeat(43));
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json().error.code).toBe('auth.invalid_refresh_token');

    const { refreshToken } = await session();
    const tokenHash = createHash('sha256').update(refreshToken).digest('hex');
    await store.db.update(refreshTokens).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(refreshTokens.tokenHash, tokenHash));
    const expired = await refresh(refreshToken);
    expect(expired.statusCode).toBe(401);
    expect(expired.json().error.code).toBe('auth.invalid_refresh_token');
  });

  it('logout answers 204, ends the session’s whole family and can be repeated', async () => {
    const first = await session();
    const second = (await refresh(first.refreshToken)).json();
    expect((await logout(second.refreshToken)).statusCode).toBe(204);
    const after = await refresh(second.refreshToken);
    expect(after.statusCode).toBe(401);
    expect(after.json().error.code).toBe('auth.invalid_refresh_token');
    expect((await logout(second.refreshToken)).statusCode).toBe(204);
    expect((await logout(first.refreshToken)).statusCode).toBe(204);
    expect((await logout('never-issued')).statusCode).toBe(204);
  });

  it('answers 400 validation_failed for a refresh without a token', async () => {
    const response = await auth.app.inject({ method: 'POST', url: '/auth/refresh', payload: {} });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('validation_failed');
  });
});
