import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SigningKeys } from '../src/signing-keys.ts';
import { newAccount, openTestStore, startAuthService, type AuthServiceUnderTest, type TestStore } from './auth-service-under-test.ts';

describe('signing key rotation', () => {
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

  const jwksKids = async () => ((await auth.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json().keys as JWK[]).map((k) => k.kid);

  it('after a rotation, signs with the new key and still accepts and publishes the retired one until its tokens expire', async () => {
    const before = (await auth.app.inject({ method: 'POST', url: '/auth/register', payload: newAccount() })).json();
    const oldKid = decodeProtectedHeader(before.accessToken).kid;

    const { kid: newKid } = await auth.keys.rotate();
    expect(await jwksKids()).toEqual([newKid, oldKid]);
    expect(await readdir(auth.keysDir)).toHaveLength(2);

    const after = (await auth.app.inject({ method: 'POST', url: '/auth/register', payload: newAccount() })).json();
    expect(decodeProtectedHeader(after.accessToken).kid).toBe(newKid);
    for (const token of [before.accessToken, after.accessToken]) {
      const response = await auth.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${token}` } });
      expect(response.statusCode).toBe(200);
    }

    const ttlMs = auth.config.ACCESS_TOKEN_TTL_SECONDS * 1000;
    const afterRetiredTokensExpired = Date.now() + ttlMs + 61_000;
    expect(auth.keys.publicJwks(afterRetiredTokensExpired).map((k) => k.kid)).toEqual([newKid]);
  });

  it('generates a key on first open and keeps it when it is not due for rotation', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'auth-keys-'));
    try {
      const options = { dir: join(dir, 'nested', 'keys'), accessTokenTtlSeconds: 900, rotationDays: 90 };
      const first = await SigningKeys.open(options);
      const second = await SigningKeys.open(options);
      expect(second.current.kid).toBe(first.current.kid);
      expect(second.publicJwks()).toEqual(first.publicJwks());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
