import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, httpCall, registerUser, removeRedisPrefix, TEST_PASSWORD, TYPESCRIPT_NODE_ARGS, uniquePrefix } from '@civildiy/common/testing';
import { SERVICES as ALL_SERVICES } from '@civildiy/common/topology';
import { dataInEarlierLayout, planDatabases } from '../../scripts/launcher/local-databases.ts';
import { newDataDir, startLauncher, type LauncherRun } from './launcher-run.ts';
import { root } from './system.ts';

const run = promisify(execFile);
const START_TIMEOUT_MS = 60_000;
/** auth-service alone: a service with a database, its data checked through its own API. */
const AUTH_ONLY = ['auth-service'] as const;

/** Logs in through auth-service's API: 200 when the account exists with that password. */
async function logIn(launcher: LauncherRun, email: string): Promise<number> {
  return (await httpCall(`${launcher.urls['auth-service']}/auth/login`, { body: { login: email, password: TEST_PASSWORD } })).status;
}

describe('npm start keeps the services\' databases on one local Postgres server', () => {
  const runs: LauncherRun[] = [];
  const folders: string[] = [];
  const prefixes: string[] = [];
  const launch = async (dataDir: string, prefix: string, env: Record<string, string> = {}) => {
    const launcher = await startLauncher({ services: AUTH_ONLY, dataDir, prefix, env });
    runs.push(launcher);
    return launcher;
  };
  const dataFolder = async () => {
    const folder = await newDataDir();
    folders.push(folder);
    const prefix = uniquePrefix('launcher-db');
    prefixes.push(prefix);
    return { folder, prefix };
  };
  afterEach(async () => {
    await Promise.all(runs.splice(0).map((launcher) => launcher.cleanUp()));
    await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
    await Promise.all(prefixes.splice(0).map((prefix) => removeRedisPrefix(prefix)));
  });

  it('gives each service a database and a role of its own, and keeps the data across a restart', async () => {
    const { folder, prefix } = await dataFolder();
    const first = await launch(folder, prefix);
    await first.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);
    expect(first.output()).toMatch(/Postgres is ready at 127\.0\.0\.1:\d+ \(pid \d+\), a database each for auth/);
    const user = await registerUser(first.urls['auth-service']);
    expect((await first.interrupt()).code).toBe(0);

    const second = await launch(folder, prefix);
    await second.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);

    expect(await logIn(second, user.email)).toBe(200);
    expect(existsSync(path.join(folder, 'auth-service', 'PG_VERSION')), 'no PGlite folder was made').toBe(false);
    // The role of the service reaches its own database only.
    const credentials = JSON.parse(await readFile(path.join(folder, 'postgres', 'credentials.json'), 'utf8')) as { databases: Record<string, string> };
    const port = /Postgres is ready at 127\.0\.0\.1:(\d+)/.exec(second.output())![1];
    const asAuth = (database: string) => new pg.Client({ connectionString: `postgres://auth:${credentials.databases.auth}@127.0.0.1:${port}/${database}` });
    const own = asAuth('auth');
    await own.connect();
    expect((await own.query('select count(*)::int as users from users')).rows[0].users).toBe(1);
    await own.end();
    await expect(asAuth('postgres').connect()).rejects.toThrow(/permission denied for database/);
  });

  it('refuses to start over data in the earlier PGlite layout, and data:migrate moves it into the server, where the account still logs in', async () => {
    const { folder, prefix } = await dataFolder();
    const onPglite = await launch(folder, prefix, { LOCAL_DATABASE: 'pglite' });
    await onPglite.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);
    expect(onPglite.output()).not.toContain('Postgres is ready');
    const user = await registerUser(onPglite.urls['auth-service']);
    expect((await onPglite.interrupt()).code).toBe(0);
    expect(existsSync(path.join(folder, 'auth-service', 'PG_VERSION'))).toBe(true);

    const refused = await launch(folder, prefix);
    const exit = await refused.exited;

    expect(exit.code, refused.output()).toBe(1);
    expect(refused.output()).toContain('The data of auth-service is in embedded PGlite folders');
    expect(refused.output()).toContain('npm run data:migrate');
    expect(refused.pids('auth-service')).toEqual([]);

    const migrate = await run(process.execPath, [...TYPESCRIPT_NODE_ARGS, 'scripts/data-migrate.ts'], {
      cwd: root,
      env: { ...process.env, DATA_DIR: folder, LOCAL_POSTGRES_PORT: String(await freePort()) },
    }).catch((error: { stdout: string; stderr: string }) => ({ stdout: error.stdout, stderr: error.stderr, failed: true }));
    expect('failed' in migrate, `${migrate.stdout}\n${migrate.stderr}`).toBe(false);
    expect(migrate.stdout).toMatch(/auth-service: \d+ rows in \d+ tables copied into "auth"/);
    expect(existsSync(path.join(folder, 'auth-service.migrated', 'PG_VERSION'))).toBe(true);

    const migrated = await launch(folder, prefix);
    await migrated.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);
    expect(await logIn(migrated, user.email)).toBe(200);
  });
});

describe('the launcher database plan', () => {
  it('puts the services with a database on the local server, search-service (pgvector) on PGlite, and a configured URL on its server', () => {
    const plan = planDatabases(ALL_SERVICES, { ORDER_DATABASE_URL: 'postgres://db.example/orders' });

    expect(plan.localPostgres.map(({ service }) => service)).toEqual(['auth-service', 'profile-service', 'posts-service', 'notification-service']);
    expect(plan.pglite).toEqual(['search-service']);
    expect(plan.configured).toEqual(['order-service']);
    expect(plan.port).toBe(5433);
  });

  it('runs every database on PGlite with LOCAL_DATABASE=pglite, and finds no earlier layout to refuse then', () => {
    const plan = planDatabases(ALL_SERVICES, { LOCAL_DATABASE: 'pglite' });

    expect(plan.localPostgres).toEqual([]);
    expect(plan.pglite).toHaveLength(6);
    expect(dataInEarlierLayout(plan, root)).toEqual([]);
  });

  it('names a bad variable', () => {
    expect(() => planDatabases(ALL_SERVICES, { LOCAL_DATABASE: 'sqlite' })).toThrow(/LOCAL_DATABASE/);
    expect(() => planDatabases(ALL_SERVICES, { LOCAL_POSTGRES_PORT: 'high' })).toThrow(/LOCAL_POSTGRES_PORT/);
  });
});
