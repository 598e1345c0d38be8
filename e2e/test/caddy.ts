import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { vi } from 'vitest';
import { freePort } from '@civildiy/common/testing';
import { caddyfileFromRoutes } from '@civildiy/common/topology';

/** The installed Caddy's version, or undefined when there is none. */
export function caddyVersion(): string | undefined {
  const probe = spawnSync('caddy', ['version'], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim().split(' ')[0] : undefined;
}

/** Why a Caddy suite skips: caddy missing outside CI (CI installs it, and there a missing one fails the suite). */
export function caddySkipReason(version: string | undefined): string | undefined {
  return version === undefined && process.env.CI !== 'true' ? 'skipped: caddy is not installed (apt-get install caddy)' : undefined;
}

/** A running Caddy with the Caddyfile generated from the route table. */
export interface RunningCaddy {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts Debian's `caddy` with `caddyfileFromRoutes` (forward_auth to auth-service's `/auth/verify`)
 * on a free port, each service at `upstream(service)` (`host:port` or a base URL), and resolves once
 * it answers an unrouted path itself.
 */
export async function startCaddy(upstream: (service: string) => string): Promise<RunningCaddy> {
  if (caddyVersion() === undefined) throw new Error('caddy is not installed, and CI must run this suite: apt-get install caddy');
  const port = await freePort();
  const workDir = await mkdtemp(path.join(tmpdir(), 'civildiy-caddy-'));
  const caddyfile = path.join(workDir, 'Caddyfile');
  await writeFile(caddyfile, caddyfileFromRoutes({ port, bindHost: '127.0.0.1', upstream }));
  // Caddy keeps state (autosave, certificates) under HOME / XDG folders: the test's own.
  const caddy: ChildProcess = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], {
    env: { ...process.env, HOME: workDir, XDG_CONFIG_HOME: workDir, XDG_DATA_HOME: workDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  caddy.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  caddy.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (caddy.exitCode === null && caddy.signalCode === null) {
      caddy.kill('SIGTERM');
      await once(caddy, 'exit');
    }
    await rm(workDir, { recursive: true, force: true });
  };
  try {
    await vi.waitFor(
      async () => {
        if (caddy.exitCode !== null) throw new Error(`caddy exited with ${caddy.exitCode}:\n${output}`);
        const response = await fetch(`${url}/no-such-route`);
        if (response.status !== 404) throw new Error(`caddy answered ${response.status}`);
      },
      { timeout: 20_000, interval: 50 },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}
