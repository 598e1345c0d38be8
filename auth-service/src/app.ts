import type { Logger } from '@civildiy/common';
import type { Redis } from '@civildiy/common/redis';
import { createServiceApp, type App, type ReadinessCheck } from '@civildiy/common/service';
import { Accounts } from './accounts.ts';
import { registerApi } from './api.ts';
import type { AuthConfig } from './config.ts';
import type { AuthDatabase } from './db/database.ts';
import { LoginThrottle } from './login-throttle.ts';
import { Passwords } from './passwords.ts';
import type { SigningKeys } from './signing-keys.ts';
import { Tokens } from './tokens.ts';

/** What {@link buildApp} needs; `main.ts` opens these, tests build their own. */
export interface AppDeps {
  config: AuthConfig;
  logger: Logger;
  db: AuthDatabase;
  /** Holds the failed-login counters. */
  redis: Redis;
  keys: SigningKeys;
  /** Checked by `GET /health/ready`. */
  readiness?: Record<string, ReadinessCheck>;
  /** Called after a commit that wrote to the outbox (`relay.wake`). */
  onOutboxWritten?: () => void;
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
  });
  const tokens = new Tokens({ db, keys, accessTokenTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS, refreshTokenTtlDays: config.REFRESH_TOKEN_TTL_DAYS });
  const accounts = new Accounts({
    db,
    tokens,
    passwords: new Passwords({ memoryKib: config.ARGON2_MEMORY_KIB, timeCost: config.ARGON2_TIME_COST, parallelism: config.ARGON2_PARALLELISM }),
    throttle: new LoginThrottle({
      redis: deps.redis,
      keyPrefix: `${config.REDIS_KEY_PREFIX}:auth:login-failures`,
      maxFailuresPerAccount: config.LOGIN_MAX_FAILURES_PER_ACCOUNT,
      maxFailuresPerAddress: config.LOGIN_MAX_FAILURES_PER_ADDRESS,
      windowSeconds: config.LOGIN_FAILURE_WINDOW_SECONDS,
    }),
    ...(deps.onOutboxWritten ? { onOutboxWritten: deps.onOutboxWritten } : {}),
  });
  registerApi(app, { accounts, tokens, keys });
  return app;
}
