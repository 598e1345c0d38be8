import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, loadConfig, newId } from '@civildiy/common';
import { openTestDatabase } from '@civildiy/common/testing';
import { createRedis, type Redis } from '@civildiy/common/redis';
import type { App } from '@civildiy/common/service';
import { buildApp } from '../src/app.ts';
import { authEnv, type AuthConfig } from '../src/config.ts';
import type { AuthDatabase } from '../src/db/database.ts';
import * as schema from '../src/db/schema.ts';
import { SigningKeys } from '../src/signing-keys.ts';

export type Driver = 'pglite' | 'postgres';
export const drivers: Driver[] = ['pglite', 'postgres'];

export const REDIS_URL = process.env.REDIS_BROKER_URL ?? 'redis://127.0.0.1:6379';
const migrationsFolder = fileURLToPath(new URL('../src/db/migrations', import.meta.url));
export const quietLogger = createLogger({ service: 'auth-service-test', level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false });

/** A database for one test file: in-memory PGlite, or a fresh database on the local Postgres server. */
export interface TestStore {
  db: AuthDatabase;
  close(): Promise<void>;
}

export async function openTestStore(driver: Driver): Promise<TestStore> {
  const database = await openTestDatabase(driver === 'postgres' ? 'Postgres server' : 'PGlite', { service: 'auth-service', migrationsFolder, schema });
  return { db: database.db, close: () => database.close() };
}

/** Options of {@link startAuthService}. */
export interface StartOptions {
  store: TestStore;
  /** Signing keys folder; default a new temporary one. */
  keysDir?: string;
  env?: Record<string, string>;
  /** The Redis of the login throttle; default {@link REDIS_URL}. */
  redisUrl?: string;
}

/** auth-service built as `main.ts` builds it, with cheap argon2, a unique Redis key prefix and its own keys. */
export interface AuthServiceUnderTest {
  app: App;
  config: AuthConfig;
  keys: SigningKeys;
  keysDir: string;
  redis: Redis;
  close(): Promise<void>;
}

export async function startAuthService(options: StartOptions): Promise<AuthServiceUnderTest> {
  const ownKeysDir = options.keysDir === undefined;
  const keysDir = options.keysDir ?? (await mkdtemp(join(tmpdir(), 'auth-keys-')));
  const config = loadConfig(authEnv, {
    REDIS_BROKER_URL: REDIS_URL,
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    LOGIN_FREE_FAILURES_PER_ACCOUNT: '3',
    // Long enough that a wait a test starts is still on when it checks it; the test of the growing
    // wait sets 1 s.
    LOGIN_FIRST_DELAY_SECONDS: '60',
    LOGIN_MAX_FAILURES_PER_ADDRESS: '6',
    LOGIN_MAX_FAILURES_PER_DEVICE: '4',
    LOGIN_FAILURE_WINDOW_SECONDS: '600',
    REDIS_KEY_PREFIX: `test-auth-${newId()}`,
    AUTH_SIGNING_KEYS_DIR: keysDir,
    ...options.env,
  });
  const keys = await SigningKeys.open({ dir: keysDir, accessTokenTtlSeconds: config.ACCESS_TOKEN_TTL_SECONDS, rotationDays: config.SIGNING_KEY_ROTATION_DAYS });
  // As in main.ts: a counter call fails instead of waiting for Redis to come back.
  const redis: Redis = createRedis(options.redisUrl ?? config.REDIS_BROKER_URL, { name: 'auth-service-test', options: { maxRetriesPerRequest: 1 } });
  const app = await buildApp({
    config,
    logger: quietLogger,
    db: options.store.db,
    redis,
    keys,
  });
  await app.ready();
  return {
    app,
    config,
    keys,
    keysDir,
    redis,
    close: async () => {
      await app.close();
      if (options.redisUrl) return redis.disconnect();
      await deleteKeys(redis, `${config.REDIS_KEY_PREFIX}:*`);
      await redis.quit();
      if (ownKeysDir) await rm(keysDir, { recursive: true, force: true });
    },
  };
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 100);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/** Fresh, unique registration data. */
export function newAccount(overrides: Partial<{ email: string; username: string; password: string }> = {}) {
  const tag = randomBytes(5).toString('hex');
  return { email: `user-${tag}@example.com`, username: `user_${tag}`, password: `correct horse ${tag}`, ...overrides };
}

/** A client address of its own, so address throttling of one test does not touch another. */
export function newAddress(): string {
  const [a, b, c] = randomBytes(3);
  return `10.${a}.${b}.${c}`;
}

/** Registration data of {@link newAccount}. */
export type Account = ReturnType<typeof newAccount>;

/** What `POST /auth/register` and `POST /auth/login` answer. */
export interface Session {
  user: { id: string };
  accessToken: string;
  refreshToken: string;
  deviceToken: string;
}

/** Registers `account` on `auth` (asserting the 201) and returns the session it opens. */
export async function registerAccount(auth: AuthServiceUnderTest, account: Account): Promise<Session> {
  const response = await auth.app.inject({ method: 'POST', url: '/auth/register', payload: account });
  if (response.statusCode !== 201) throw new Error(`register: ${response.statusCode} ${response.body}`);
  return response.json();
}
