import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, type JWK } from 'jose';
import { newId } from '../ids/index.ts';
import { ACCESS_TOKEN_AUDIENCE, ACCESS_TOKEN_ISSUER, type KeySource } from '../service/auth.ts';

/** Signs access tokens the way auth-service does, with a key of its own (for services' tests). */
export interface TestTokens {
  /** Give this to `createServiceApp({ auth })` / a service's `buildApp`. */
  keys: KeySource;
  /** The public JWKS (to serve from a test HTTP server). */
  jwks: { keys: JWK[] };
  /**
   * An access token for `userId` (default a new id), valid for `expiresIn` (default 5 min), carrying
   * `roles` (default none; e.g. `['operator']` for the operations routes; unknown ones are sent as given).
   */
  token(userId?: string, options?: TestTokenOptions): Promise<string>;
  /** A token signed with another key under the same `kid`: must be rejected. */
  foreignToken(userId: string): Promise<string>;
}

/** Claims of a test token (see {@link TestTokens.token}). */
export interface TestTokenOptions {
  /** Lifetime (a jose time span or seconds). Default `'5m'`. */
  expiresIn?: string | number;
  /** The `username` claim. Default `'tester'`. */
  username?: string;
  /** The `roles` claim. Default: none (the claim is left out, as for an account without roles). */
  roles?: readonly string[];
}

/** Creates a fresh Ed25519 key and signer for tests. */
export async function createTestTokens(kid = `test-${newId()}`): Promise<TestTokens> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { extractable: true });
  const foreign = await generateKeyPair('EdDSA');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  const jwks = { keys: [jwk] };
  const sign = (key: typeof privateKey, userId: string, options: TestTokenOptions = {}) =>
    new SignJWT({ typ: 'access', username: options.username ?? 'tester', ...(options.roles ? { roles: [...options.roles] } : {}) })
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
