import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newAccount, newAddress, openTestStore, registerAccount, startAuthService, type Account, type AuthServiceUnderTest, type Session, type TestStore } from './auth-service-under-test.ts';

// Device tokens do not touch the database beyond the login itself, so one driver is enough here;
// login-throttling.test.ts runs the throttle on both.


const DAY_MS = 86_400_000;

/** A UUIDv7 whose time is `ms`: signing keys take their age from their kid. */
function uuidV7At(ms: number): string {
  const hex = ms.toString(16).padStart(12, '0') + '7' + randomBytes(2).toString('hex').slice(1) + '8' + randomBytes(8).toString('hex').slice(1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Writes a signing key file as the service does, created at `createdAt`. */
async function writeSigningKey(dir: string, createdAt: number): Promise<{ kid: string; privateKey: CryptoKey }> {
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = uuidV7At(createdAt);
  const file = join(dir, `${kid}.jwk.json`);
  await writeFile(file, JSON.stringify({ ...(await exportJWK(privateKey)), kid, alg: 'EdDSA', use: 'sig' }), { mode: 0o600 });
  await chmod(file, 0o600);
  return { kid, privateKey };
}

/** `token`'s header and claims, with `claims` changed, signed by `key` under `kid`. */
async function resign(token: string, key: CryptoKey, kid: string, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ ...decodeJwt(token), ...claims }).setProtectedHeader({ ...decodeProtectedHeader(token), alg: 'EdDSA', kid }).sign(key);
}

describe('device tokens', () => {
  let store: TestStore;
  let auth: AuthServiceUnderTest;

  beforeAll(async () => {
    store = await openTestStore('pglite');
    auth = await startAuthService({ store });
  });
  afterAll(async () => {
    await auth?.close();
    await store?.close();
  });

  const register = (account: Account, on = auth): Promise<Session> => registerAccount(on, account);
  const login = (account: Account, password: string, deviceToken?: string, on = auth) =>
    on.app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { login: account.username, password, ...(deviceToken === undefined ? {} : { deviceToken }) },
      headers: { 'x-forwarded-for': newAddress() },
    });
  const refresh = (refreshToken: string) => auth.app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } });
  /** Uses up the account's 3 free failures without a device token: unknown clients now wait. */
  async function makeAccountWait(account: Account, on = auth): Promise<void> {
    for (let i = 0; i < 3; i++) expect((await login(account, 'wrong password', undefined, on)).statusCode).toBe(401);
    expect((await login(account, account.password, undefined, on)).statusCode).toBe(429);
  }
  async function serviceKey(): Promise<{ kid: string; key: CryptoKey }> {
    const [file] = await readdir(auth.keysDir);
    const jwk = JSON.parse(await readFile(join(auth.keysDir, file!), 'utf8')) as JWK;
    return { kid: jwk.kid!, key: (await importJWK(jwk, 'EdDSA')) as CryptoKey };
  }

  it('registration, login and refresh each hand out a device token, which is no access token', async () => {
    const account = newAccount();
    const registered = await register(account);
    const loggedIn = (await login(account, account.password)).json();
    const refreshed = (await refresh(registered.refreshToken)).json();
    for (const { deviceToken } of [registered, loggedIn, refreshed]) {
      expect(deviceToken).toEqual(expect.any(String));
      const asAccessToken = await auth.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${deviceToken}` } });
      expect(asAccessToken.statusCode).toBe(401);
      expect(asAccessToken.json().error.code).toBe('auth.invalid_token');
    }
  });

  const invalidTokens: [string, (session: Session) => Promise<string>][] = [
    ['a forged one (signed with a key not the service’s)', async (session) => {
      const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
      return resign(session.deviceToken, privateKey, (await serviceKey()).kid);
    }],
    ['a tampered one (another device named under the original signature)', async (session) => {
      const [header, , signature] = session.deviceToken.split('.');
      const payload = Buffer.from(JSON.stringify({ ...decodeJwt(session.deviceToken), sid: randomUUID() })).toString('base64url');
      return `${header}.${payload}.${signature}`;
    }],
    ['an expired one', async (session) => {
      const { kid, key } = await serviceKey();
      const now = Math.floor(Date.now() / 1000);
      return resign(session.deviceToken, key, kid, { iat: now - 91 * 86_400, exp: now - 60 });
    }],
    ['an access token of the account', async (session) => session.accessToken],
    ['a string that is no token', async () => 'not-a-device-token'],
  ];

  it.each(invalidTokens)('%s counts as no device token: its failures make the account wait, and it does not get past the wait', async (_case, makeToken) => {
    const account = newAccount();
    const session = await register(account);
    const token = await makeToken(session);
    for (let i = 0; i < 3; i++) expect((await login(account, 'wrong password', token)).statusCode).toBe(401);
    const refused = await login(account, account.password, token);
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe('auth.too_many_attempts');
    expect((await login(account, account.password, session.deviceToken)).statusCode).toBe(200);
  });

  it('a refresh renews the device token of the same device: the owner stays known, and a lock on the device holds across renewals', async () => {
    const account = newAccount();
    const session = await register(account);
    const renewed = (await refresh(session.refreshToken)).json().deviceToken as string;

    await makeAccountWait(account);
    expect((await login(account, account.password, renewed)).statusCode).toBe(200);

    // Locking the registration's token locks the device, so its renewal too: a stolen refresh token cannot mint fresh guesses.
    for (let i = 0; i < 4; i++) expect((await login(account, 'wrong password', session.deviceToken)).statusCode).toBe(401);
    const locked = await login(account, account.password, renewed);
    expect(locked.statusCode).toBe(429);
    expect(locked.json().error.code).toBe('auth.too_many_attempts');
  });

  it('a device token signed with a key since retired from the JWKS still counts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'auth-keys-'));
    const retired = await writeSigningKey(dir, Date.now() - 200 * DAY_MS);
    await writeSigningKey(dir, Date.now() - 100 * DAY_MS);
    // Opening rotates (the newest key is past SIGNING_KEY_ROTATION_DAYS); the oldest is long retired.
    const rotated = await startAuthService({ store, keysDir: dir });
    try {
      const jwks = (await rotated.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys as JWK[];
      expect(jwks.map((key) => key.kid)).not.toContain(retired.kid);

      const account = newAccount();
      const session = await register(account, rotated);
      const oldDeviceToken = await resign(session.deviceToken, retired.privateKey, retired.kid);
      await makeAccountWait(account, rotated);
      expect((await login(account, account.password, oldDeviceToken, rotated)).statusCode).toBe(200);
    } finally {
      await rotated.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the API docs describe the deviceToken a login takes and every session returns', async () => {
    const docs = (await auth.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const schemaOf = (path: string, part: 'request' | 'response') => {
      const operation = docs.paths[path].post;
      return part === 'request' ? operation.requestBody.content['application/json'].schema : operation.responses['200'].content['application/json'].schema;
    };
    expect(schemaOf('/auth/login', 'request').properties.deviceToken.description).toMatch(/device/);
    expect(schemaOf('/auth/login', 'request').required).not.toContain('deviceToken');
    for (const path of ['/auth/login', '/auth/refresh']) expect(schemaOf(path, 'response').properties.deviceToken).toBeDefined();
  });
});
