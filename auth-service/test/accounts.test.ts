import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers, newAccount, newAddress, openTestStore, startAuthService, type AuthServiceUnderTest, type TestStore } from './auth-service-under-test.ts';

describe.each(drivers)('accounts on %s', (driver) => {
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

  const register = (payload: Record<string, unknown>) => auth.app.inject({ method: 'POST', url: '/auth/register', payload });
  const login = (payload: { login: string; password: string }, address = newAddress()) =>
    auth.app.inject({ method: 'POST', url: '/auth/login', payload, headers: { 'x-forwarded-for': address } });
  const me = (accessToken: string) => auth.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${accessToken}` } });

  describe('registration', () => {
    it('creates the user with a normalised email and answers 201 with a working token pair', async () => {
      const account = newAccount();
      const response = await register({ ...account, email: `  ${account.email.toUpperCase()} ` });
      expect(response.statusCode).toBe(201);
      const body = response.json();
      expect(body.user).toEqual({ id: expect.any(String), email: account.email, username: account.username, createdAt: expect.any(String), roles: [] });
      expect(body.expiresIn).toBe(900);
      expect(body.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const profile = await me(body.accessToken);
      expect(profile.statusCode).toBe(200);
      expect(profile.json()).toEqual(body.user);
    });

    it('answers 409 auth.email_taken for an email registered in another case', async () => {
      const account = newAccount();
      expect((await register(account)).statusCode).toBe(201);
      const again = await register(newAccount({ email: account.email.toUpperCase() }));
      expect(again.statusCode).toBe(409);
      expect(again.json().error.code).toBe('auth.email_taken');
    });

    it('answers 409 auth.username_taken for a username registered in another case', async () => {
      const account = newAccount();
      expect((await register(account)).statusCode).toBe(201);
      const again = await register(newAccount({ username: account.username.toUpperCase() }));
      expect(again.statusCode).toBe(409);
      expect(again.json().error.code).toBe('auth.username_taken');
    });

    it.each([
      ['a malformed email', { email: 'not-an-email' }, 'email'],
      ['a password under 10 characters', { password: 'short-pw9' }, 'password'],
      ['a password over 256 characters', { password: 'x'.repeat(257) }, 'password'],
      ['a username with spaces', { username: 'two words' }, 'username'],
      ['a username under 3 characters', { username: 'ab' }, 'username'],
    ])('answers 400 validation_failed for %s', async (_case, override, field) => {
      const response = await register(newAccount(override));
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('validation_failed');
      expect(response.json().error.details.map((d: { path: string }) => d.path)).toContain(field);
    });

    it('when two registrations of one email race, one gets 201 and the other 409', async () => {
      const account = newAccount();
      const responses = await Promise.all([register(account), register(newAccount({ email: account.email.toUpperCase() }))]);
      expect(responses.map((r) => r.statusCode).sort()).toEqual([201, 409]);
      expect(responses.find((r) => r.statusCode === 409)!.json().error.code).toBe('auth.email_taken');
    });

    it('when two registrations of one username race, one gets 201 and the other 409', async () => {
      const account = newAccount();
      const responses = await Promise.all([register(account), register(newAccount({ username: account.username.toLowerCase().replace('user', 'USER') }))]);
      expect(responses.map((r) => r.statusCode).sort()).toEqual([201, 409]);
      expect(responses.find((r) => r.statusCode === 409)!.json().error.code).toBe('auth.username_taken');
    });
  });

  describe('login', () => {
    it('logs in by email and by username, in any case', async () => {
      const account = newAccount();
      const { user } = (await register(account)).json();
      for (const name of [account.email.toUpperCase(), account.username.toUpperCase(), ` ${account.email} `]) {
        const response = await login({ login: name, password: account.password });
        expect(response.statusCode).toBe(200);
        expect(response.json().user).toEqual(user);
        expect((await me(response.json().accessToken)).json().id).toBe(user.id);
      }
    });

    it('answers a wrong password and an unknown user with the same 401 auth.invalid_credentials', async () => {
      const account = newAccount();
      await register(account);
      const wrongPassword = await login({ login: account.email, password: 'not the password' });
      const unknownUser = await login({ login: `nobody-${account.email}`, password: account.password });
      expect(wrongPassword.statusCode).toBe(401);
      expect(unknownUser.statusCode).toBe(401);
      expect(wrongPassword.json()).toEqual(unknownUser.json());
      expect(wrongPassword.json().error.code).toBe('auth.invalid_credentials');
    });

    it('answers 400 validation_failed for a login without a password', async () => {
      const response = await auth.app.inject({ method: 'POST', url: '/auth/login', payload: { login: 'someone' } });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('validation_failed');
    });
  });
});
