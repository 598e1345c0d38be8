import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  freePort,
  registerUser,
  removeRedisPrefix,
  repositoryRoot,
  startServiceProcess,
  TEST_PASSWORD,
  TYPESCRIPT_NODE_ARGS,
  uniquePrefix,
  type RegisteredUser,
  type ServiceProcess,
  type TestDatabase,
} from '@civildiy/common/testing';
import { startDashboard, type DashboardUnderTest } from './dashboard-under-test.ts';

let database: TestDatabase;
let dataDir: string;
let authPrefix: string;
let auth: ServiceProcess;
let authUrl: string;
let dashboard: DashboardUnderTest;
let operator: RegisteredUser;
let user: RegisteredUser;

/** `npm run -w auth-service role -- <args>` from its sources, on the test database. */
async function role(...args: string[]): Promise<void> {
  const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, 'src/role-command.ts', ...args], {
    cwd: path.join(repositoryRoot, 'auth-service'),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AUTH_DATABASE_URL: database.url, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`role ${args.join(' ')} exited ${code}: ${output}`);
}

/** A real auth-service process on a database of its own; the dashboard finds it through discovery and verifies against its JWKS. */
beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'dashboard-sign-in-'));
  authPrefix = uniquePrefix('dashboard-auth');
  const port = await freePort();
  authUrl = `http://127.0.0.1:${port}`;
  auth = await startServiceProcess({
    root: repositoryRoot,
    workspace: 'auth-service',
    env: {
      AUTH_PORT: String(port),
      AUTH_DATABASE_URL: database.url,
      DATA_DIR: dataDir,
      REDIS_KEY_PREFIX: authPrefix,
      ARGON2_MEMORY_KIB: '1024',
      ARGON2_TIME_COST: '1',
    },
    readyUrl: `${authUrl}/health/ready`,
  });
  operator = await registerUser(authUrl, 'operator');
  user = await registerUser(authUrl, 'builder');
  await role('grant', operator.email, 'operator');
  dashboard = await startDashboard({ urls: { 'auth-service': authUrl }, auth: { jwksUrl: `${authUrl}/.well-known/jwks.json` } });
}, 120_000);

afterAll(async () => {
  await dashboard?.close();
  await auth?.stop();
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
  await removeRedisPrefix(authPrefix);
});

describe('signing in to the dashboard', () => {
  it('signs an operator in through auth-service; the session opens the API and can be refreshed', async () => {
    const session = await dashboard.call('POST', '/admin/session', { body: { login: operator.email, password: TEST_PASSWORD } });
    expect(session.status, JSON.stringify(session.body)).toBe(200);
    expect(session.body).toMatchObject({ user: { id: operator.id, username: operator.username, roles: ['operator'] }, expiresIn: expect.any(Number) });
    expect((await dashboard.call('GET', '/admin/activity', { token: session.body.accessToken })).status).toBe(200);

    const refreshed = await dashboard.call('POST', '/admin/session/refresh', { body: { refreshToken: session.body.refreshToken } });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.user.roles).toEqual(['operator']);
    expect(refreshed.body.refreshToken).not.toBe(session.body.refreshToken);
    // The refresh token is single use (auth-service's rule, passed through).
    const reused = await dashboard.call('POST', '/admin/session/refresh', { body: { refreshToken: session.body.refreshToken } });
    expect(reused.status).toBe(401);

    const { body } = await dashboard.call('GET', '/admin/activity', { token: refreshed.body.accessToken });
    expect(body.items).toContainEqual(expect.objectContaining({ actor: { id: operator.id, username: operator.username, via: 'dashboard' }, action: 'sign_in', outcome: 'done' }));
  });

  it('refuses an account without the operator role with 403 dashboard.operator_required, and records the attempt', async () => {
    const refused = await dashboard.call('POST', '/admin/session', { body: { login: user.username, password: TEST_PASSWORD } });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('dashboard.operator_required');
    const session = await dashboard.call('POST', '/admin/session', { body: { login: operator.username, password: TEST_PASSWORD } });
    const { body } = await dashboard.call('GET', '/admin/activity', { token: session.body.accessToken });
    expect(body.items[1]).toMatchObject({ actor: { id: user.id }, action: 'sign_in', outcome: 'failed' });
  });

  it("passes auth-service's refusal of wrong credentials through", async () => {
    const wrong = await dashboard.call('POST', '/admin/session', { body: { login: operator.email, password: 'not the password' } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('auth.invalid_credentials');
  });
});
