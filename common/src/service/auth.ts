import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { enrichContext } from '../context/index.ts';
import { Role } from '../contracts/users.ts';
import { ForbiddenError, UnauthorizedError } from '../errors/index.ts';

/** `iss` of every access token. */
export const ACCESS_TOKEN_ISSUER = 'civildiy-auth';
/** `aud` of every access token. */
export const ACCESS_TOKEN_AUDIENCE = 'civildiy';
/** Algorithms access tokens may be signed with. `none` and HMAC are never accepted. */
export const ACCESS_TOKEN_ALGORITHMS = ['EdDSA', 'ES256'];

/** The user a verified access token names. */
export interface AuthenticatedUser {
  id: string;
  username?: string;
  /** The roles of the `roles` claim that this code knows (unknown ones are dropped); empty for most users. */
  roles: Role[];
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `app.authenticate` once the bearer token verified. */
    user?: AuthenticatedUser;
  }
  interface FastifyInstance {
    /** An `onRequest` hook for protected routes: verifies the bearer token or answers 401. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /**
     * An `onRequest` hook for operations routes: verifies the bearer token (401 as `authenticate`)
     * and requires `role` in it, else 403 `auth.role_required`.
     */
    requireRole: (role: Role) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
}

/** Where verification keys come from. */
export type KeySource =
  /**
   * The auth service's JWKS, fetched, cached for `cacheMaxAgeMs` (default 10 min) and refetched on an
   * unknown `kid` — at most once per `refetchCooldownMs` (default 1 s), so garbage kids cannot make
   * every request fetch.
   */
  | { jwksUrl: string; cacheMaxAgeMs?: number; refetchCooldownMs?: number }
  /** A key resolver in process (the auth service verifying its own tokens, tests). */
  | { keys: JWTVerifyGetKey };

/** Builds a verifier returning the user of a valid access token; throws {@link UnauthorizedError} otherwise. */
export function createTokenVerifier(source: KeySource): (token: string) => Promise<AuthenticatedUser> {
  const keys =
    'keys' in source
      ? source.keys
      : createRemoteJWKSet(new URL(source.jwksUrl), {
          cacheMaxAge: source.cacheMaxAgeMs ?? 10 * 60_000,
          cooldownDuration: source.refetchCooldownMs ?? 1_000,
          timeoutDuration: 2_000,
        });
  return async (token) => {
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: ACCESS_TOKEN_ISSUER,
        audience: ACCESS_TOKEN_AUDIENCE,
        algorithms: ACCESS_TOKEN_ALGORITHMS,
        requiredClaims: ['sub', 'exp'],
      });
      if (payload.typ !== undefined && payload.typ !== 'access') throw new UnauthorizedError('Not an access token', 'auth.invalid_token');
      return { id: payload.sub!, ...(typeof payload.username === 'string' ? { username: payload.username } : {}), roles: rolesOf(payload.roles) };
    } catch (error) {
      if (error instanceof UnauthorizedError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw new UnauthorizedError('The access token has expired', 'auth.token_expired');
      if (error instanceof joseErrors.JWKSTimeout || (error instanceof Error && /fetch failed|ECONNREFUSED/.test(error.message))) {
        throw new UnauthorizedError('Token keys are unavailable; try again', 'auth.keys_unavailable', { cause: error });
      }
      throw new UnauthorizedError('The access token is invalid', 'auth.invalid_token', { cause: error });
    }
  };
}

/** The known roles of a `roles` claim (anything else in it is ignored, a malformed claim is no role). */
export function rolesOf(claim: unknown): Role[] {
  if (!Array.isArray(claim)) return [];
  return [...new Set(claim.filter((value): value is Role => Role.safeParse(value).success))];
}

/** Throws 403 `auth.role_required` unless `user` holds `role`. */
export function assertRole(user: AuthenticatedUser, role: Role): void {
  if (!user.roles.includes(role)) throw new ForbiddenError(`This needs the ${role} role`, 'auth.role_required', { details: { role } });
}

/** The bearer token of a request, or `undefined`. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

/** Decorates `app.authenticate` (see {@link KeySource}). */
export function installAuth(app: FastifyInstance, source: KeySource): void {
  const verify = createTokenVerifier(source);
  app.decorateRequest('user', undefined);
  const authenticate = async (request: FastifyRequest) => {
    const token = bearerToken(request);
    if (!token) throw new UnauthorizedError('A bearer access token is required', 'auth.missing_token');
    request.user = await verify(token);
    enrichContext({ userId: request.user.id });
  };
  app.decorate('authenticate', authenticate);
  app.decorate('requireRole', (role: Role) => async (request: FastifyRequest) => {
    await authenticate(request);
    assertRole(request.user!, role);
  });
}

/** The authenticated user of a protected route (after `app.authenticate`); 401 if there is none. */
export function requireUser(request: FastifyRequest): AuthenticatedUser {
  if (!request.user) throw new UnauthorizedError('A bearer access token is required', 'auth.missing_token');
  return request.user;
}
