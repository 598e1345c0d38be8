import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { drivers, newAccount, newAddress, openTestStore, registerAccount, startAuthService, type Account, type AuthServiceUnderTest, type Session, type TestStore } from './auth-service-under-test.ts';

// The harness allows 3 free failures per login name, 6 failed logins per address and 4 per device
// token in a 600 s window, and a first wait of 60 s (1 s where the test says so).

/** Where a login comes from: `peer` is the TCP peer (default 127.0.0.1, the gateway), `address` its X-Forwarded-For (default a new one). */
interface From {
  peer?: string;
  address?: string;
}

describe.each(drivers)('login throttling on %s', (driver) => {
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

  const register = (account: Account, on = auth): Promise<Session> => registerAccount(on, account);
  const login = (payload: { login: string; password: string; deviceToken?: string }, from: From = {}, on = auth) =>
    on.app.inject({
      method: 'POST',
      url: '/auth/login',
      payload,
      headers: { 'x-forwarded-for': from.address ?? newAddress() },
      ...(from.peer ? { remoteAddress: from.peer } : {}),
    });
  const wrong = (account: Account, extra: { deviceToken?: string } = {}, from: From = {}, on = auth) =>
    login({ login: account.email, password: 'wrong password', ...extra }, from, on);
  const right = (account: Account, extra: { deviceToken?: string } = {}, from: From = {}, on = auth) =>
    login({ login: account.email, password: account.password, ...extra }, from, on);

  async function expectFailures(times: number, attempt: () => Promise<LightMyRequestResponse>): Promise<void> {
    for (let i = 0; i < times; i++) expect((await attempt()).statusCode).toBe(401);
  }
  function expectTooMany(response: LightMyRequestResponse, retryAfter?: string): void {
    expect(response.statusCode).toBe(429);
    expect(response.json().error.code).toBe('auth.too_many_attempts');
    if (retryAfter === undefined) expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
    else expect(response.headers['retry-after']).toBe(retryAfter);
  }
  /** Repeats `attempt` until the throttle lets it through: the evidence that the wait is over. */
  const untilAdmitted = (attempt: () => Promise<LightMyRequestResponse>) =>
    vi.waitFor(
      async () => {
        const response = await attempt();
        if (response.statusCode === 429) throw new Error(`still waiting (Retry-After ${response.headers['retry-after']})`);
        return response;
      },
      { timeout: 15_000, interval: 100 },
    );

  describe('per client address', () => {
    it('an untrusted peer rotating X-Forwarded-For is one address: 429 after 6 failures, while other peers still log in', async () => {
      const account = newAccount();
      await register(account);
      const peer = newAddress();
      for (let i = 0; i < 6; i++) {
        const response = await login({ login: `ghost-${i}-${account.username}`, password: 'wrong password' }, { peer, address: newAddress() });
        expect(response.statusCode).toBe(401);
      }
      expectTooMany(await right(account, {}, { peer, address: newAddress() }));
      expect((await right(account, {}, { peer: newAddress() })).statusCode).toBe(200);
    });

    it("the gateway's X-Forwarded-For is believed: clients behind it are counted apart", async () => {
      const tag = randomBytes(4).toString('hex');
      for (let i = 0; i < 8; i++) {
        const response = await login({ login: `ghost-${i}-${tag}`, password: 'wrong password' }, { peer: '127.0.0.1', address: newAddress() });
        expect(response.statusCode).toBe(401);
      }
    });

    it('a known device logs in with its device token from an address over its limit (a shared network)', async () => {
      const account = newAccount();
      const session = await register(account);
      const address = newAddress();
      for (let i = 0; i < 6; i++) {
        expect((await login({ login: `ghost-${i}-${account.username}`, password: 'wrong password' }, { address })).statusCode).toBe(401);
      }
      expectTooMany(await right(account, {}, { address }));
      expect((await right(account, { deviceToken: session.deviceToken }, { address })).statusCode).toBe(200);
    });
  });

  describe('per account, without a device token', () => {
    it('without a device token, each failure past the free ones doubles the wait (1 s, then 2 s), and a success starts over', async () => {
      const quick = await startAuthService({ store, env: { LOGIN_FIRST_DELAY_SECONDS: '1' } });
      try {
        const account = newAccount();
        await register(account, quick);
        const guess = () => wrong(account, {}, {}, quick);
        await expectFailures(3, guess);
        expectTooMany(await guess(), '1');
        expect((await untilAdmitted(guess)).statusCode).toBe(401);
        expectTooMany(await guess(), '2');
        expect((await untilAdmitted(() => right(account, {}, {}, quick))).statusCode).toBe(200);
        await expectFailures(3, guess);
        expectTooMany(await guess(), '1');
      } finally {
        await quick.close();
      }
    });

    it('the wait holds for the right password too, from any address, and never turns into a lock of the owner', async () => {
      const quick = await startAuthService({ store, env: { LOGIN_FIRST_DELAY_SECONDS: '1' } });
      try {
        const account = newAccount();
        await register(account, quick);
        await expectFailures(3, () => wrong(account, {}, {}, quick));
        expectTooMany(await right(account, {}, {}, quick), '1');
        expect((await untilAdmitted(() => right(account, {}, {}, quick))).statusCode).toBe(200);
      } finally {
        await quick.close();
      }
    });

    it('counts failures per login name whether or not the account exists, so the answer reveals nothing', async () => {
      const ghost = { ...newAccount(), email: `ghost-${newAccount().email}` };
      await expectFailures(3, () => wrong(ghost));
      expectTooMany(await wrong(ghost));
    });

    it('while the account waits, its owner’s session keeps refreshing', async () => {
      const account = newAccount();
      const session = await register(account);
      await expectFailures(3, () => wrong(account));
      expectTooMany(await right(account));
      const refreshed = await auth.app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: session.refreshToken } });
      expect(refreshed.statusCode).toBe(200);
    });
  });

  describe('with a device token', () => {
    it("an attacker's failures do not stop the owner logging in with the account's device token", async () => {
      const account = newAccount();
      const session = await register(account);
      await expectFailures(3, () => wrong(account));
      expectTooMany(await wrong(account));

      const owner = await right(account, { deviceToken: session.deviceToken });
      expect(owner.statusCode).toBe(200);
      expect(owner.json().user.id).toBe(session.user.id);
      expect((await right(account, { deviceToken: owner.json().deviceToken })).statusCode).toBe(200);
      // The owner's success on a known device does not lift the wait for unknown clients.
      expectTooMany(await right(account));
    });

    it("a device token of another account gives no bypass, and failures with it count on the account's wait", async () => {
      const victim = newAccount();
      await register(victim);
      const attacker = await register(newAccount());
      await expectFailures(3, () => wrong(victim, { deviceToken: attacker.deviceToken }));
      expectTooMany(await right(victim, { deviceToken: attacker.deviceToken }));
    });

    it('a stolen device token is locked after 4 failures, while the owner still logs in without it or with another device', async () => {
      const account = newAccount();
      const stolen = (await register(account)).deviceToken;
      const otherDevice = await right(account);
      expect(otherDevice.statusCode).toBe(200);

      await expectFailures(4, () => wrong(account, { deviceToken: stolen }, { address: newAddress() }));
      const locked = await right(account, { deviceToken: stolen });
      expectTooMany(locked);
      expect(Number(locked.headers['retry-after'])).toBeLessThanOrEqual(600);

      // The device's failures did not count on the account (4 > its 3 free ones).
      expect((await right(account)).statusCode).toBe(200);
      expect((await right(account, { deviceToken: otherDevice.json().deviceToken })).statusCode).toBe(200);
    });
  });

  it('every process sharing the Redis sees the same waits and device locks', async () => {
    const twin = await startAuthService({ store, keysDir: auth.keysDir, env: { REDIS_KEY_PREFIX: auth.config.REDIS_KEY_PREFIX } });
    try {
      const account = newAccount();
      const session = await register(account);
      await expectFailures(3, () => wrong(account));
      expectTooMany(await right(account, {}, {}, twin));
      const known = await right(account, { deviceToken: session.deviceToken }, {}, twin);
      expect(known.statusCode).toBe(200);

      await expectFailures(4, () => wrong(account, { deviceToken: known.json().deviceToken }, {}, twin));
      expectTooMany(await right(account, { deviceToken: known.json().deviceToken }));
    } finally {
      await twin.close();
    }
  });

  it('keeps the throttle state in Redis under REDIS_KEY_PREFIX', async () => {
    const account = newAccount();
    const session = await register(account);
    const address = newAddress();
    await wrong(account, {}, { address });
    await wrong(account, { deviceToken: session.deviceToken });
    const keys = await auth.redis.keys(`${auth.config.REDIS_KEY_PREFIX}:auth:login-throttle:*`);
    expect(keys).toEqual(
      expect.arrayContaining([expect.stringContaining(`:account:${account.email}`), expect.stringContaining(`:address:${address}`), expect.stringContaining(':device:')]),
    );
  });

  it.each([
    ['without a device token', false],
    ['with a valid device token', true],
  ])('when Redis is unreachable, answers 503 auth.throttle_unavailable %s instead of letting guesses through', async (_case, withDevice) => {
    const account = newAccount();
    const session = await register(account);
    const cut = await startAuthService({ store, keysDir: auth.keysDir, redisUrl: 'redis://127.0.0.1:1' });
    try {
      const response = await right(account, withDevice ? { deviceToken: session.deviceToken } : {}, {}, cut);
      expect(response.statusCode).toBe(503);
      expect(response.json().error.code).toBe('auth.throttle_unavailable');
    } finally {
      await cut.close();
    }
  });
});
