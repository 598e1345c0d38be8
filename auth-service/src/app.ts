import type { Logger } from '@civildiy/common';
import type { Redis } from '@civildiy/common/redis';
import { createServiceApp, httpSettings, type App, type ReadinessCheck } from '@civildiy/common/service';
import { AccountBackoff } from './account-backoff.ts';
import { Accounts } from './accounts.ts';
import { registerApi } from './api.ts';
import type { AuthConfig } from './config.ts';
import type { AuthDatabase } from './db/database.ts';
import { DeviceTokens } from './device-tokens.ts';
import { FailureWindow } from './failure-window.ts';
import { LoginThrottle } from './login-throttle.ts';
import { Passwords } from './passwords.ts';
import type { SigningKeys } from './signing-keys.ts';
import { Tokens } from './tokens.ts';

/** What {@link buildApp} needs; `main.ts` opens these, tests build their own. */
export interface AppDeps {
  config: AuthConfig;
  logger: Logger;
  db: AuthDatabase;
  /** Holds the login throttle's state. */
  redis: Redis;
  keys: SigningKeys;
  /** Checked by `GET /health/ready`. */
  readiness?: Record<string, ReadinessCheck>;
}

/** auth-service's HTTP app, ready to `inject` or `listen`. */
export async function buildApp(deps: AppDeps): Promise<App> {
  const { config, db, keys } = deps;
  const app = await createServiceApp({
    name: 'auth-service',
    logger: deps.logger,
    docs: { description: 'Accounts, passwords, access and refresh tokens, JWKS' },
    // The service verifies its own tokens with its key set in memory, not through its JWKS URL.
    auth: { keys: keys.verificationKeys() },
    readiness: deps.readiness ?? {},
    http: httpSettings(config),
  });
  const devices = new DeviceTokens({ keys, ttlDays: config.DEVICE_TOKEN_TTL_DAYS });
  const tokens = new Tokens({ db, keys, devices, accessTokenTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS, refreshTokenTtlDays: config.REFRESH_TOKEN_TTL_DAYS });
  const accounts = new Accounts({
    db,
    tokens,
    devices,
    passwords: new Passwords({ memoryKib: config.ARGON2_MEMORY_KIB, timeCost: config.ARGON2_TIME_COST, parallelism: config.ARGON2_PARALLELISM }),
    throttle: loginThrottle(config, deps.redis),
  });
  registerApi(app, { accounts, tokens, keys });
  return app;
}

function loginThrottle(config: AuthConfig, redis: Redis): LoginThrottle {
  const keyPrefix = `${config.REDIS_KEY_PREFIX}:auth:login-throttle`;
  const windowSeconds = config.LOGIN_FAILURE_WINDOW_SECONDS;
  return new LoginThrottle({
    addresses: new FailureWindow({ redis, keyPrefix: `${keyPrefix}:address`, maxFailures: config.LOGIN_MAX_FAILURES_PER_ADDRESS, windowSeconds }),
    accounts: new AccountBackoff({
      redis,
      keyPrefix: `${keyPrefix}:account`,
      freeFailures: config.LOGIN_FREE_FAILURES_PER_ACCOUNT,
      firstDelayMs: config.LOGIN_FIRST_DELAY_SECONDS * 1000,
      maxDelayMs: config.LOGIN_MAX_DELAY_SECONDS * 1000,
      memoryMs: windowSeconds * 1000,
    }),
    devices: new FailureWindow({ redis, keyPrefix: `${keyPrefix}:device`, maxFailures: config.LOGIN_MAX_FAILURES_PER_DEVICE, windowSeconds, lockForWindow: true }),
  });
}
