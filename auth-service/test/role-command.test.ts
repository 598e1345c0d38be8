import { once } from 'node:events';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalPostgres, openDatabase } from '@civildiy/common/db';
import { createTestDatabase, freePort, runTypescriptCommand, type CommandOutcome, type TestDatabase } from '@civildiy/common/testing';
import { decodeJwt } from 'jose';
import * as schema from '../src/db/schema.ts';
import { newAccount, registerAccount, startAuthService, type Account } from './auth-service-under-test.ts';

const workspace = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const migrationsFolder = path.join(workspace, 'src/db/migrations');

/** Runs `npm run -w auth-service role -- <args>` (from its sources) with only `env` on top of a clean environment. */
function role(args: string[], env: Record<string, string>): Promise<CommandOutcome> {
  return runTypescriptCommand({ cwd: workspace, script: 'src/role-command.ts', args, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LOG_FORMAT: 'json', ...env } });
}

/** The JSON log lines of a run's output. */
const logLines = (output: string) =>
  output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** Registers `account` on an auth-service over the database at `url` (or embedded in `dataDir`), closed again. */
async function registerOn(where: { url: string } | { dataDir: string }, ...accounts: Account[]): Promise<void> {
  const database = await openDatabase({ service: 'auth-service', dataDir: 'dataDir' in where ? where.dataDir : 'memory://', migrationsFolder, schema, ...('url' in where ? { url: where.url } : {}) });
  const auth = await startAuthService({ store: { db: database.db, close: () => database.close() } });
  try {
    for (const account of accounts) await registerAccount(auth, account);
  } finally {
    await auth.close();
    await database.close();
  }
}

describe('the role command on the server of AUTH_DATABASE_URL', () => {
  let server: TestDatabase;
  const operator = newAccount();
  const user = newAccount();
  let env: Record<string, string>;

  beforeAll(async () => {
    server = await createTestDatabase();
    await registerOn({ url: server.url }, operator, user);
    env = { AUTH_DATABASE_URL: server.url };
  });
  afterAll(async () => {
    await server?.drop();
  });

  it('grants a role, logging who was granted what, and says a second grant changes nothing', async () => {
    const granted = await role(['grant', operator.email, 'operator'], env);
    expect(granted.code, granted.stderr).toBe(0);
    expect(logLines(granted.stdout)).toContainEqual(expect.objectContaining({ action: 'grant', role: 'operator', email: operator.email, changed: true, grantedBy: expect.stringMatching(/^cli/) }));

    const again = await role(['grant', operator.email, 'operator'], env);
    expect(again.code).toBe(0);
    expect(logLines(again.stdout)).toContainEqual(expect.objectContaining({ action: 'grant', changed: false, msg: expect.stringContaining('already holds operator: nothing to do') }));
  });

  it('lists the role holders and one account, and the next login carries the role', async () => {
    const all = await role(['list'], env);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain(`${operator.email} (${operator.username}`);
    expect(all.stdout).toContain('operator (granted ');
    expect(all.stdout).not.toContain(user.email);
    const one = await role(['list', user.email], env);
    expect(one.stdout).toContain(`${user.email} (${user.username}`);
    expect(one.stdout).toContain('no roles');

    const database = await openDatabase({ service: 'auth-service', dataDir: 'memory://', migrationsFolder, schema, url: server.url });
    const auth = await startAuthService({ store: { db: database.db, close: () => database.close() } });
    try {
      const response = await auth.app.inject({ method: 'POST', url: '/auth/login', payload: { login: operator.email, password: operator.password } });
      expect(decodeJwt(response.json().accessToken).roles).toEqual(['operator']);
    } finally {
      await auth.close();
      await database.close();
    }
  });

  it('revokes a role, and says when there was none to revoke', async () => {
    await role(['grant', user.email, 'operator'], env);
    const revoked = await role(['revoke', user.email, 'operator'], env);
    expect(revoked.code).toBe(0);
    expect(logLines(revoked.stdout)).toContainEqual(expect.objectContaining({ action: 'revoke', email: user.email, changed: true }));
    const again = await role(['revoke', user.email, 'operator'], env);
    expect(logLines(again.stdout)).toContainEqual(expect.objectContaining({ action: 'revoke', changed: false }));
  });

  it('exits 1 naming an unknown email, 2 listing the roles for an unknown role, 2 with the usage for bad arguments', async () => {
    const unknownEmail = await role(['grant', 'nobody@example.com', 'operator'], env);
    expect(unknownEmail.code).toBe(1);
    expect(unknownEmail.stderr).toContain('No account has the email nobody@example.com');

    const unknownRole = await role(['grant', operator.email, 'admin'], env);
    expect(unknownRole.code).toBe(2);
    expect(unknownRole.stderr).toContain('Unknown role "admin". Roles: operator.');

    for (const args of [[], ['grant', operator.email], ['promote', operator.email, 'operator'], ['list', 'a@example.com', 'extra']]) {
      const bad = await role(args, env);
      expect({ args, code: bad.code }).toEqual({ args, code: 2 });
      expect(bad.stderr).toContain('Usage: npm run -w auth-service role -- <command>');
    }
  });
});

describe('the role command where npm start keeps the database', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'auth-role-'));
    // As root the local server runs as another user, who must reach its folder.
    await chmod(dataDir, 0o755);
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('uses the running local Postgres server, and starts it for the command (and stops it after) when npm start is not running', async () => {
    const port = await freePort();
    const account = newAccount();
    const server = await LocalPostgres.start({ dataDir, port });
    try {
      await registerOn({ url: await server.database('auth') }, account);
      const running = await role(['grant', account.email, 'operator'], { DATA_DIR: dataDir, LOCAL_POSTGRES_PORT: String(port) });
      expect(running.code, running.stderr).toBe(0);
      expect(logLines(running.stdout)).toContainEqual(expect.objectContaining({ changed: true, database: `database "auth" on the local Postgres server (127.0.0.1:${port})` }));
    } finally {
      await server.stop();
    }

    const stopped = await role(['list', account.email], { DATA_DIR: dataDir, LOCAL_POSTGRES_PORT: String(port) });
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain(`${account.email} (${account.username}`);
    expect(stopped.stdout).toContain('operator (granted');
    // The server it started is stopped again: the port is free for npm start.
    const again = await LocalPostgres.start({ dataDir, port });
    await again.stop();
  });

  it('exits 1 with what to do when there is no local cluster yet', async () => {
    const empty = await mkdtemp(path.join(tmpdir(), 'auth-role-empty-'));
    try {
      const result = await role(['list'], { DATA_DIR: empty, LOCAL_POSTGRES_PORT: String(await freePort()) });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('There is no local Postgres cluster');
      expect(result.stderr).toContain('npm start creates it');
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('with LOCAL_DATABASE=pglite opens the embedded database, but not while auth-service runs on it', async () => {
    const account = newAccount();
    await registerOn({ dataDir }, account);
    const env = { DATA_DIR: dataDir, LOCAL_DATABASE: 'pglite', AUTH_PORT: String(await freePort()) };
    const granted = await role(['grant', account.email, 'operator'], env);
    expect(granted.code, granted.stderr).toBe(0);
    expect(logLines(granted.stdout)).toContainEqual(expect.objectContaining({ changed: true, database: `embedded PGlite in ${path.join(dataDir, 'auth-service')}` }));

    // Something answers on auth-service's port: the command must not open the database beside it.
    const service = http.createServer((_request, response) => response.end('{"status":"ok"}'));
    service.listen(0, '127.0.0.1');
    await once(service, 'listening');
    try {
      const refused = await role(['list'], { ...env, AUTH_PORT: String((service.address() as { port: number }).port) });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('auth-service is running');
    } finally {
      service.close();
    }
  });
});
