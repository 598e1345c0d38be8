import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@civildiy/common';
import { isUuid, newId } from '@civildiy/common';
import { createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK, type JWTVerifyGetKey } from 'jose';

/** The JWS algorithm of every key this service makes. */
export const SIGNING_ALGORITHM = 'EdDSA';
const FILE_SUFFIX = '.jwk.json';
/** Tolerated clock difference between this service and verifiers when retiring a key. */
const CLOCK_SKEW_MS = 60_000;

/** A key pair of the set. */
interface SigningKey {
  kid: string;
  createdAt: Date;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** Options of {@link SigningKeys.open}. */
export interface SigningKeysOptions {
  /** Folder of the private JWK files (`<kid>.jwk.json`, mode 0600); created when missing. */
  dir: string;
  /** Access-token lifetime: a retired key stays published this long after its successor appeared. */
  accessTokenTtlSeconds: number;
  /** A key older than this is replaced by a new one at open (0 = never). */
  rotationDays: number;
  logger?: Logger;
}

/** Reads the creation time a UUIDv7 kid carries (its first 48 bits are milliseconds since the epoch). */
function uuidV7Time(kid: string): Date | undefined {
  if (!isUuid(kid, 7)) return undefined;
  return new Date(Number.parseInt(kid.replaceAll('-', '').slice(0, 12), 16));
}

function toPublicJwk(jwk: JWK, kid: string): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid, alg: SIGNING_ALGORITHM, use: 'sig' };
}

/**
 * The service's Ed25519 signing keys, kept as private JWK files in one folder. The newest key signs;
 * older ("retired") keys stay published in the JWKS and accepted until every token they signed has
 * expired. Keys are generated on first open, and again when the newest is older than `rotationDays`.
 */
export class SigningKeys {
  private verificationSet: { kids: string; keys: JWTVerifyGetKey } | undefined;
  private everyKeySet: { kids: string; keys: JWTVerifyGetKey } | undefined;

  private constructor(
    private readonly options: SigningKeysOptions,
    private keys: SigningKey[],
  ) {}

  /** Loads the keys of `options.dir`, generating one when the folder has none or the newest is due for rotation. */
  static async open(options: SigningKeysOptions): Promise<SigningKeys> {
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    const set = new SigningKeys(options, await loadKeys(options.dir, options.logger));
    if (set.keys.length === 0) {
      const key = await set.rotate();
      options.logger?.info({ kid: key.kid, dir: options.dir }, 'generated the first signing key');
    } else if (set.isRotationDue()) {
      const key = await set.rotate();
      options.logger?.info({ kid: key.kid, dir: options.dir }, 'rotated the signing key');
    }
    return set;
  }

  /** The key that signs new tokens. */
  get current(): { kid: string; privateKey: CryptoKey } {
    const key = this.keys.at(-1);
    if (!key) throw new Error('No signing key loaded');
    return key;
  }

  /** Generates, saves and switches to a new key; the previous one becomes retired. */
  async rotate(): Promise<{ kid: string }> {
    const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALGORITHM, { crv: 'Ed25519', extractable: true });
    const kid = newId();
    const jwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: SIGNING_ALGORITHM, use: 'sig' };
    const file = join(this.options.dir, `${kid}${FILE_SUFFIX}`);
    await writeFile(file, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(file, 0o600); // in case a umask widened it
    const key: SigningKey = { kid, createdAt: uuidV7Time(kid)!, privateKey, publicJwk: toPublicJwk(await exportJWK(publicKey), kid) };
    this.keys = [...this.keys, key];
    return { kid };
  }

  /** Public JWKs of the current key and of retired keys whose tokens may still be valid (newest first). */
  publicJwks(now = Date.now()): JWK[] {
    const ttlMs = this.options.accessTokenTtlSeconds * 1000;
    return this.keys
      .filter((key, index) => {
        const successor = this.keys[index + 1];
        return !successor || successor.createdAt.getTime() + ttlMs + CLOCK_SKEW_MS > now;
      })
      .map((key) => key.publicJwk)
      .reverse();
  }

  /** A key resolver over {@link publicJwks}, for the service to verify its own tokens. */
  verificationKeys(): JWTVerifyGetKey {
    return (header, token) => {
      const jwks = this.publicJwks();
      const kids = jwks.map((jwk) => jwk.kid).join(',');
      if (this.verificationSet?.kids !== kids) this.verificationSet = { kids, keys: createLocalJWKSet({ keys: jwks }) };
      return this.verificationSet.keys(header, token);
    };
  }

  /**
   * A key resolver over every key of the set, retired ones included, for tokens only this service
   * verifies and that outlive an access token (device tokens): a rotation must not void them.
   */
  everyKey(): JWTVerifyGetKey {
    const kids = this.keys.map((key) => key.kid).join(',');
    if (this.everyKeySet?.kids !== kids) this.everyKeySet = { kids, keys: createLocalJWKSet({ keys: this.keys.map((key) => key.publicJwk) }) };
    return this.everyKeySet.keys;
  }

  private isRotationDue(): boolean {
    const current = this.keys.at(-1);
    if (!current || this.options.rotationDays === 0) return false;
    return Date.now() - current.createdAt.getTime() >= this.options.rotationDays * 86_400_000;
  }
}

/** Every valid private Ed25519 JWK of `dir`, oldest first. A malformed file stops the start with its name. */
async function loadKeys(dir: string, logger?: Logger): Promise<SigningKey[]> {
  const files = (await readdir(dir)).filter((name) => name.endsWith(FILE_SUFFIX));
  const keys = await Promise.all(
    files.map(async (name): Promise<SigningKey> => {
      const file = join(dir, name);
      const info = await stat(file);
      if ((info.mode & 0o077) !== 0) logger?.warn({ file, mode: (info.mode & 0o777).toString(8) }, 'signing key file is readable by others');
      let jwk: JWK;
      try {
        jwk = JSON.parse(await readFile(file, 'utf8')) as JWK;
      } catch (error) {
        throw new Error(`Signing key ${file} is not valid JSON`, { cause: error });
      }
      if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || !jwk.d || !jwk.x) throw new Error(`Signing key ${file} is not a private Ed25519 JWK`);
      const kid = jwk.kid ?? name.slice(0, -FILE_SUFFIX.length);
      const privateKey = (await importJWK({ ...jwk, alg: SIGNING_ALGORITHM }, SIGNING_ALGORITHM)) as CryptoKey;
      return { kid, createdAt: uuidV7Time(kid) ?? info.mtime, privateKey, publicJwk: toPublicJwk(jwk, kid) };
    }),
  );
  return keys.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.kid.localeCompare(b.kid));
}
