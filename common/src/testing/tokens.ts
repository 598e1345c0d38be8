import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, type JWK } from 'jose';
import { newId } from '../ids/index.ts';
import { ACCESS_TOKEN_AUDIENCE, ACCESS_TOKEN_ISSUER, type KeySource } from '../service/auth.ts';

/** Signs access tokens the way auth-service does, with a key of its own (for services' tests). */
export interface TestTokens {
  /** Give this to `createServiceApp({ auth })` / a service's `buildApp`. */
  keys: KeySource;
  /** The public JWKS (to serve from a test HTTP server). */
  jwks: { keys: JWK[] };
  /** An access token for `userId` (default a new id), valid for `expiresIn` (default 5 min). */
  token(userId?: string, options?: { expiresIn?: string | number; username?: string }): Promise<string>;
  /** A token signed with another key under the same `kid`: must be rejected. */
  foreignToken(userId: string): Promise<string>;
}

/** Creates a fresh Ed25519 key and signer for tests. */
export async function createTestTokens(kid = `test-${newId()}`): Promise<TestTokens> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true });
  const foreign = await generateKeyPair('EdDSA');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  const jwks = { keys: [jwk] };
  const sign = (key: typeof privateKey, userId: string, options: { expiresIn?: string | number; username?: string } = {}) =>
    new SignJWT({ typ: 'access', username: options.username ?? 'tester' })
      .setProtectedHeader({ alg: 'EdDSA', kid })
      .setSubject(userId)
      .setIssuer(ACCESS_TOKEN_ISSUER)
      .setAudience(ACCESS_TOKEN_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? '5m')
      .sign(key);
  return {
    keys: { keys: createLocalJWKSet(jwks) },
    jwks,
    token: (userId = newId(), options) => sign(privateKey, userId, options),
    foreignToken: (userId) => sign(foreign.privateKey, userId),
  };
}
