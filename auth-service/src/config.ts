import { baseEnv, envInt } from '@civildiy/common';
import { z } from 'zod';

/** auth-service's environment, parsed once in `main.ts`. */
export const authEnv = baseEnv.extend({
  AUTH_PORT: envInt(0, 65_535).default(8101).describe('the HTTP port of auth-service'),
  AUTH_DATABASE_URL: z.string().min(1).optional().describe('a postgres:// URL (default: embedded PGlite in DATA_DIR/auth-service)'),
  AUTH_SIGNING_KEYS_DIR: z.string().min(1).optional().describe('the folder of the Ed25519 signing keys (default: DATA_DIR/auth/keys; generated when empty)'),
  SIGNING_KEY_ROTATION_DAYS: envInt(0, 3650)
    .default(90)
    .describe('age in days after which a new signing key is generated at start (0 = never rotate)'),
  ACCESS_TOKEN_TTL_SECONDS: envInt(30, 86_400).default(900).describe('lifetime of an access token in seconds'),
  REFRESH_TOKEN_TTL_DAYS: envInt(1, 365).default(30).describe('lifetime of a refresh token in days (each rotation starts a new one)'),
  ARGON2_MEMORY_KIB: envInt(1024, 4_194_304).default(19_456).describe('argon2id memory cost in KiB (OWASP minimum: 19456)'),
  ARGON2_TIME_COST: envInt(1, 20).default(2).describe('argon2id iterations'),
  ARGON2_PARALLELISM: envInt(1, 16).default(1).describe('argon2id lanes'),
  DEVICE_TOKEN_TTL_DAYS: envInt(1, 3650)
    .default(90)
    .describe('lifetime of a device token in days (every login and refresh on the device renews it; logins with a valid one are throttled per device)'),
  LOGIN_MAX_FAILURES_PER_ADDRESS: envInt(1, 100_000)
    .default(20)
    .describe('failed logins without a device token per client address (the peer, or X-Forwarded-For from a trusted proxy) within LOGIN_FAILURE_WINDOW_SECONDS before 429'),
  LOGIN_FREE_FAILURES_PER_ACCOUNT: envInt(1, 10_000)
    .default(5)
    .describe('failed logins without a device token per login name before each further attempt has to wait (429 with Retry-After)'),
  LOGIN_FIRST_DELAY_SECONDS: envInt(1, 86_400)
    .default(1)
    .describe('the wait after the last free failure of a login name; it doubles with every further failure until a success'),
  LOGIN_MAX_DELAY_SECONDS: envInt(1, 86_400).default(900).describe('the longest wait between failed logins of one login name'),
  LOGIN_MAX_FAILURES_PER_DEVICE: envInt(1, 10_000)
    .default(10)
    .describe('failed logins with one device token within LOGIN_FAILURE_WINDOW_SECONDS before that device is locked for the window'),
  LOGIN_FAILURE_WINDOW_SECONDS: envInt(1, 86_400)
    .default(900)
    .describe("how long failed logins count, in seconds: the per-address window, the device's window and lock, and the quiet time after which a login name's wait starts over"),
});
export type AuthConfig = z.infer<typeof authEnv>;
