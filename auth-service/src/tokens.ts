import { createHash, randomBytes } from 'node:crypto';
import { UnauthorizedError, newId } from '@civildiy/common';
import type { Role } from '@civildiy/common/contracts';
import { ACCESS_TOKEN_AUDIENCE, ACCESS_TOKEN_ISSUER } from '@civildiy/common/service';
import { and, eq, gt, inArray, isNull } from 'drizzle-orm';
import { SignJWT } from 'jose';
import type { AuthDatabase, AuthTransaction } from './db/database.ts';
import { refreshTokens, users } from './db/schema.ts';
import type { DeviceTokens } from './device-tokens.ts';
import { rolesOf } from './roles.ts';
import { SIGNING_ALGORITHM, type SigningKeys } from './signing-keys.ts';

/** What a login, a registration and a refresh hand out. */
export interface IssuedTokens {
  accessToken: string;
  refreshToken: string;
  /** Seconds until the access token expires. */
  expiresIn: number;
  /** Names the refresh-token family as the device (see {@link DeviceTokens}). */
  deviceToken: string;
}

/** Whom a token is for. */
export interface TokenSubject {
  id: string;
  username: string;
}

/** Options of {@link Tokens}. */
export interface TokensOptions {
  db: AuthDatabase;
  keys: SigningKeys;
  devices: DeviceTokens;
  accessTokenTtlSeconds: number;
  refreshTokenTtlDays: number;
}

type RotationOutcome = { kind: 'rotated'; tokens: IssuedTokens } | { kind: 'reused' } | { kind: 'invalid' };

const hashOf = (refreshToken: string) => createHash('sha256').update(refreshToken).digest('hex');

/**
 * Access tokens (EdDSA JWTs signed with the current key), refresh tokens (32 random bytes, stored
 * only as their SHA-256, grouped in families that rotate on every use) and device tokens. A family
 * is one session on one device, so it is the device a device token names: every rotation renews the
 * device token of the same device (an active session keeps its device known, and a lock on the
 * device holds across renewals), and ending the session does not end the device's trust.
 */
export class Tokens {
  constructor(private readonly options: TokensOptions) {}

  /**
   * Issues new tokens: a new family, or the next token of `familyId` on rotation. Pass the
   * transaction that creates the user so a failed registration leaves no token behind. The access
   * token carries the roles the user holds now (`roles` claim), so a grant or a revoke shows at the
   * next login or refresh.
   */
  async issue(executor: AuthDatabase | AuthTransaction, subject: TokenSubject, familyId = newId()): Promise<IssuedTokens> {
    const refreshToken = randomBytes(32).toString('base64url');
    await executor.insert(refreshTokens).values({
      id: newId(),
      userId: subject.id,
      familyId,
      tokenHash: hashOf(refreshToken),
      expiresAt: new Date(Date.now() + this.options.refreshTokenTtlDays * 86_400_000),
    });
    return {
      accessToken: await this.signAccessToken(subject, await rolesOf(executor, subject.id)),
      refreshToken,
      expiresIn: this.options.accessTokenTtlSeconds,
      deviceToken: await this.options.devices.issue(subject.id, familyId),
    };
  }

  /**
   * Exchanges a refresh token for new tokens and marks it rotated. Of two concurrent exchanges of one
   * token only one can claim it; the other, like any later use of a rotated token, counts as reuse:
   * the whole family is revoked and 401 `auth.refresh_reused` answered.
   * @throws UnauthorizedError `auth.invalid_refresh_token` for an unknown, expired or revoked token.
   */
  async rotate(refreshToken: string): Promise<IssuedTokens> {
    const tokenHash = hashOf(refreshToken);
    const outcome = await this.options.db.transaction(async (tx): Promise<RotationOutcome> => {
      const now = new Date();
      // The conditional update is the claim: Postgres lets one transaction through; a concurrent one
      // waits for its commit, re-checks `rotated_at` and updates nothing.
      const [claimed] = await tx
        .update(refreshTokens)
        .set({ rotatedAt: now })
        .where(and(eq(refreshTokens.tokenHash, tokenHash), isNull(refreshTokens.rotatedAt), isNull(refreshTokens.revokedAt), gt(refreshTokens.expiresAt, now)))
        .returning({ userId: refreshTokens.userId, familyId: refreshTokens.familyId });
      if (claimed) {
        const [user] = await tx.select({ id: users.id, username: users.username }).from(users).where(eq(users.id, claimed.userId));
        if (!user) return { kind: 'invalid' };
        return { kind: 'rotated', tokens: await this.issue(tx, user, claimed.familyId) };
      }
      const [known] = await tx.select({ familyId: refreshTokens.familyId, rotatedAt: refreshTokens.rotatedAt }).from(refreshTokens).where(eq(refreshTokens.tokenHash, tokenHash));
      if (!known?.rotatedAt) return { kind: 'invalid' };
      await tx.update(refreshTokens).set({ revokedAt: now }).where(and(eq(refreshTokens.familyId, known.familyId), isNull(refreshTokens.revokedAt)));
      return { kind: 'reused' };
    });
    switch (outcome.kind) {
      case 'rotated':
        return outcome.tokens;
      case 'reused':
        throw new UnauthorizedError('The refresh token was already used; every session of it has been ended', 'auth.refresh_reused');
      case 'invalid':
        throw new UnauthorizedError('The refresh token is invalid or expired', 'auth.invalid_refresh_token');
    }
  }

  /** Revokes the family of `refreshToken` (logout). Unknown or already revoked tokens are ignored. */
  async revokeFamily(refreshToken: string): Promise<void> {
    const family = this.options.db.select({ familyId: refreshTokens.familyId }).from(refreshTokens).where(eq(refreshTokens.tokenHash, hashOf(refreshToken)));
    await this.options.db
      .update(refreshTokens)
      .set({ revokedAt: new Date() })
      .where(and(inArray(refreshTokens.familyId, family), isNull(refreshTokens.revokedAt)));
  }

  private signAccessToken(subject: TokenSubject, roles: readonly Role[]): Promise<string> {
    const { kid, privateKey } = this.options.keys.current;
    return new SignJWT({ typ: 'access', username: subject.username, roles })
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, kid, typ: 'JWT' })
      .setSubject(subject.id)
      .setIssuer(ACCESS_TOKEN_ISSUER)
      .setAudience(ACCESS_TOKEN_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.options.accessTokenTtlSeconds}s`)
      .setJti(newId())
      .sign(privateKey);
  }
}
