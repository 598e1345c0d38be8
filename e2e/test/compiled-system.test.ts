import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_SERVICES } from '@civildiy/common/testing';
import { call, registerUser, root, startSystem, UNLIMITED_GATEWAY, type System } from './system.ts';

const run = promisify(execFile);

/**
 * The system as `npm start` and the images run it: every service from its compiled `dist/main.js`
 * (built by the e2e project's global set-up) with plain node, the databases on a local Postgres
 * server (search-service on PGlite).
 */
describe('the compiled system', () => {
  let system: System;
  beforeAll(async () => {
    system = await startSystem({ services: SYSTEM_SERVICES, compiled: true, env: UNLIMITED_GATEWAY });
  });
  afterAll(() => system?.stop());

  it('runs every service from dist/ with plain node, no TypeScript loader, each answering /health/ready', async () => {
    for (const name of SYSTEM_SERVICES) {
      const pid = system.processes.get(name)!.child.pid!;
      const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      expect(args.at(-1), name).toBe('dist/main.js');
      expect(args.join(' '), name).not.toMatch(/tsx|\.ts\b/);
      const ready = await fetch(`${system.serviceUrls[name]}/health/ready`);
      expect(ready.status, name).toBe(200);
    }
  });

  it("answers the images' health check (exit 0 when ready, 1 for a port where nothing answers)", async () => {
    const healthcheck = (env: Record<string, string>) =>
      run(process.execPath, ['common/dist/runtime/healthcheck.js'], { cwd: root, env: { ...process.env, ...env } }).then(
        () => 0,
        (error: { code: number }) => error.code,
      );
    const port = new URL(system.urls.orders).port;

    expect(await healthcheck({ CIVILDIY_SERVICE: 'order-service', ORDER_PORT: port })).toBe(0);
    expect(await healthcheck({ CIVILDIY_SERVICE: 'order-service', ORDER_PORT: '1' })).toBe(1);
    expect(await healthcheck({ CIVILDIY_SERVICE: 'no-such-service' })).toBe(1);
  });

  it('serves a user through the gateway: registration, a post, the catalog', async () => {
    const user = await registerUser(system.urls.gateway);
    const post = await call(`${system.urls.gateway}/posts`, { token: user.token, body: { title: 'A compiled bench', body: 'Built from dist.', tags: ['bench'] } });
    expect(post.status, JSON.stringify(post.body)).toBe(201);
    const catalog = await call(`${system.urls.gateway}/catalog`, { token: user.token });
    expect(catalog.status).toBe(200);
  });
});
