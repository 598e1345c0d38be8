import { newId } from '@civildiy/common';
import { ACCESS_TOKEN_ISSUER } from '@civildiy/common/service';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { SIGNING_ALGORITHM, type SigningKeys } from './signing-keys.ts';

/** The JWS `typ` header of a device token. */
export const DEVICE_TOKEN_TYPE = 'device+jwt';
/** Only this service reads device tokens; an audience of their own keeps every access-token verifier from accepting one. */
const DEVICE_TOKEN_AUDIENCE = 'civildiy-auth:device';

/** Options of {@link DeviceTokens}. */
export interface DeviceTokensOptions {
  keys: SigningKeys;
  ttlDays: number;
}

/**
 * Device tokens (OWASP "device cookies"): an EdDSA JWT naming the user it was issued to (`sub`) and
 * the device (`sid`, the refresh-token family of the session it came with). A client that presents
 * a valid one for the account it logs in to has logged in to that account before, so login
 * throttling counts its failures per device instead of per account. Verified against every key of
 * the set, so a signing-key rotation does not void them.
 */
export class DeviceTokens {
  constructor(private readonly options: DeviceTokensOptions) {}

  /** A new device token of `userId` for the device `deviceId`, valid `ttlDays`. */
  issue(userId: string, deviceId: string): Promise<string> {
    const { kid, privateKey } = this.options.keys.current;
    return new SignJWT({ typ: 'device', sid: deviceId })
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, kid, typ: DEVICE_TOKEN_TYPE })
      .setSubject(userId)
      .setIssuer(ACCESS_TOKEN_ISSUER)
      .setAudience(DEVICE_TOKEN_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(`${this.options.ttlDays}d`)
      .setJti(newId())
      .sign(privateKey);
  }

  /**
   * The device `token` names when it is a valid device token of `userId`; `undefined` for anything
   * else — no token, a forged, expired or malformed one, another account's, an access token.
   */
  async verify(token: string | undefined, userId: string | undefined): Promise<string | undefined> {
    if (!token) return undefined;
    try {
      const { payload } = await jwtVerify(token, this.options.keys.everyKey(), {
        issuer: ACCESS_TOKEN_ISSUER,
        audience: DEVICE_TOKEN_AUDIENCE,
        algorithms: [SIGNING_ALGORITHM],
        typ: DEVICE_TOKEN_TYPE,
        requiredClaims: ['sub', 'exp', 'sid'],
      });
      if (payload.typ !== 'device' || typeof payload.sid !== 'string' || userId === undefined || payload.sub !== userId) return undefined;
      return payload.sid;
    } catch (error) {
      if (error instanceof joseErrors.JOSEError) return undefined;
      throw error;
    }
  }
}
