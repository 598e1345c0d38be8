import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ACCESS_TOKEN_AUDIENCE, ACCESS_TOKEN_ISSUER } from '@civildiy/common/service';
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newAccount, openTestStore, startAuthService, type AuthServiceUnderTest, type TestStore } from './auth-service-under-test.ts';

describe('access tokens, JWKS and /auth/verify', () => {
  let store: TestStore;
  let auth: AuthServiceUnderTest;
  let session: { user: { id: string; username: string }; accessToken: string };

  beforeAll(async () => {
    store = await openTestStore('pglite');
    auth = await startAuthService({ store });
    session = (await auth.app.inject({ method: 'POST', url: '/auth/register', payload: newAccount() })).json();
  });
  afterAll(async () => {
    await auth?.close();
    await store?.close();
  });

  const get = (url: string, token?: string) =>
    auth.app.inject({ method: 'GET', url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

  async function serviceKey(): Promise<{ kid: string; key: CryptoKey }> {
    const [file] = await readdir(auth.keysDir);
    const jwk = JSON.parse(await readFile(join(auth.keysDir, file!), 'utf8')) as JWK;
    return { kid: jwk.kid!, key: (await importJWK(jwk, 'EdDSA')) as CryptoKey };
  }

  function sign(claims: Record<string, unknown>, key: CryptoKey, kid: string, expiresAt: number) {
    return new SignJWT({ typ: 'access', username: session.user.username, ...claims })
      .setProtectedHeader({ alg: 'EdDSA', kid })
      .setSubject(session.user.id)
      .setIssuer(ACCESS_TOKEN_ISSUER)
      .setAudience(ACCESS_TOKEN_AUDIENCE)
      .setIssuedAt(expiresAt - 900)
      .setExpirationTime(expiresAt)
      .sign(key);
  }

  it('issues an EdDSA JWT with kid, issuer, audience, subject, username, typ and a 15-minute lifetime', async () => {
    const header = decodeProtectedHeader(session.accessToken);
    const claims = decodeJwt(session.accessToken);
    expect(header).toMatchObject({ alg: 'EdDSA', kid: (await serviceKey()).kid });
    expect(claims).toMatchObject({ iss: ACCESS_TOKEN_ISSUER, aud: ACCESS_TOKEN_AUDIENCE, sub: session.user.id, username: session.user.username, typ: 'access' });
    expect(claims.exp! - claims.iat!).toBe(900);
  });

  it('GET /auth/me answers the user for a valid token and 401 without one', async () => {
    const response = await get('/auth/me', session.accessToken);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual(session.user);
    const missing = await get('/auth/me');
    expect(missing.statusCode).toBe(401);
    expect(missing.json().error.code).toBe('auth.missing_token');
  });

  it('GET /auth/me rejects a tampered token and one signed by a foreign key under our kid', async () => {
    const [header, payload, signature] = session.accessToken.split('.');
    const forged = Buffer.from(JSON.stringify({ ...decodeJwt(session.accessToken), sub: '0190a6f0-0000-7000-8000-000000000099' })).toString('base64url');
    const tampered = `${header}.${forged}.${signature}`;
    expect(payload).not.toBe(forged);
    const { kid } = await serviceKey();
    const foreign = await sign({}, (await generateKeyPair('EdDSA')).privateKey, kid, Math.floor(Date.now() / 1000) + 600);
    for (const token of [tampered, foreign]) {
      const response = await get('/auth/me', token);
      expect(response.statusCode).toBe(401);
      expect(response.json().error.code).toBe('auth.invalid_token');
    }
  });

  it('GET /auth/me rejects an expired token signed by the service key with auth.token_expired', async () => {
    const { kid, key } = await serviceKey();
    const expired = await sign({}, key, kid, Math.floor(Date.now() / 1000) - 120);
    const response = await get('/auth/me', expired);
    expect(response.statusCode).toBe(401);
    expect(response.json().error.code).toBe('auth.token_expired');
  });

  it('GET /.well-known/jwks.json publishes the public key only', async () => {
    const response = await get('/.well-known/jwks.json');
    expect(response.statusCode).toBe(200);
    const { keys } = response.json() as { keys: JWK[] };
    expect(keys).toEqual([{ kty: 'OKP', crv: 'Ed25519', x: expect.any(String), kid: (await serviceKey()).kid, alg: 'EdDSA', use: 'sig' }]);
    expect(response.body).not.toMatch(/"d"\s*:/);
    expect(response.headers['cache-control']).toContain('max-age');
  });

  it('GET /auth/verify answers 200 with X-User-ID and X-Username for a valid token', async () => {
    const response = await get('/auth/verify', session.accessToken);
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-user-id']).toBe(session.user.id);
    expect(response.headers['x-username']).toBe(session.user.username);
  });

  it('GET /auth/verify answers 401 with the error body and no X-User-ID otherwise', async () => {
    for (const token of [undefined, 'not-a-jwt']) {
      const response = await get('/auth/verify', token);
      expect(response.statusCode).toBe(401);
      expect(response.json().error.code).toMatch(/^auth\./);
      expect(response.headers['x-user-id']).toBeUndefined();
    }
  });

  it('documents every route in the OpenAPI document', async () => {
    const spec = (await get('/docs/json')).json();
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining(['/auth/register', '/auth/login', '/auth/refresh', '/auth/logout', '/auth/me', '/auth/verify', '/.well-known/jwks.json']),
    );
    expect(spec.paths['/auth/register'].post.requestBody.content['application/json'].schema.required).toEqual(['email', 'username', 'password']);
  });

  it('keeps the signing key in a private JWK file (mode 0600) named by its kid', async () => {
    const files = await readdir(auth.keysDir);
    expect(files).toHaveLength(1);
    const { kid } = await serviceKey();
    expect(files[0]).toBe(`${kid}.jwk.json`);
    expect((await stat(join(auth.keysDir, files[0]!))).mode & 0o777).toBe(0o600);
  });

  it('after a restart with the same keys folder, reuses the key: earlier tokens still verify', async () => {
    const { kid } = await serviceKey();
    const restarted = await startAuthService({ store, keysDir: auth.keysDir });
    try {
      expect(await readdir(auth.keysDir)).toHaveLength(1);
      const jwks = (await restarted.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json();
      expect(jwks.keys.map((k: JWK) => k.kid)).toEqual([kid]);
      const response = await restarted.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${session.accessToken}` } });
      expect(response.statusCode).toBe(200);
    } finally {
      await restarted.close();
    }
  });

  it('refuses to start on a malformed key file, naming it', async () => {
    const bad = join(auth.keysDir, 'broken.jwk.json');
    await writeFile(bad, '{"kty":"oct"}', { mode: 0o600 });
    try {
      await expect(startAuthService({ store, keysDir: auth.keysDir })).rejects.toThrow(/broken\.jwk\.json/);
    } finally {
      await rm(bad);
    }
  });
});
