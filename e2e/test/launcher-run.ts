/**
 * `npm start` as the tests run it: the compiled launcher (`scripts/dist/start.js`, built by the e2e
 * project's global set-up) as a real process, on free ports, with its own Redis key prefix, data
 * folder and local Postgres port.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SERVICE_NODE_ARGS } from '@civildiy/common';
import { freePort, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { root } from './system.ts';

/** A small system: a provider, a service with a database, one that calls auth, and the worker. */
export const SERVICES = ['mock-providers', 'auth-service', 'order-service', 'worker'] as const;
export type Service = (typeof SERVICES)[number];

/** A running launcher. */
export interface LauncherRun {
  /** Its data folder. */
  dataDir: string;
  /** Each service's base URL. */
  urls: Record<Service, string>;
  /** Each service's `/health/ready`. */
  readyUrls: Record<Service, string>;
  /** The launcher's own pid. */
  pid: number;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `pattern` in the output; rejects after `timeoutMs` or when the launcher exits first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** The pid of every process the launcher started for `service`, in start order (from its "started (pid N)" lines). */
  pids(service: Service): number[];
  /** SIGINT to the launcher; resolves with its exit. */
  interrupt(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Stops what is left (SIGINT, then SIGKILL to every process it started), deletes the Redis keys
   * and the data folder (unless the caller passed one: then the caller owns it).
   */
  cleanUp(): Promise<void>;
}

export interface LauncherOptions {
  /** Environment on top of the run's own. */
  env?: Record<string, string>;
  /** The services to start (`npm start -- <service> …`). Default {@link SERVICES}. */
  services?: readonly Service[];
  /** A data folder to use (a second start on the same data); default a new one, deleted by `cleanUp`. */
  dataDir?: string;
  /** The Redis key prefix (a second start on the same data); default a new one. */
  prefix?: string;
}

/** A data folder for launcher runs; the local Postgres server (run as another user under root) must reach it. */
export async function newDataDir(): Promise<string> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'civildiy-launcher-'));
  await chmod(dataDir, 0o755);
  return dataDir;
}

export async function startLauncher(options: LauncherOptions = {}): Promise<LauncherRun> {
  const services = options.services ?? SERVICES;
  const [payments, messaging, embeddings, auth, orders, worker, postgres] = await Promise.all(Array.from({ length: 7 }, () => freePort()));
  const url = (port: number | undefined) => `http://127.0.0.1:${port}`;
  const ownsData = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await newDataDir());
  const prefix = options.prefix ?? uniquePrefix('launcher');
  const env = {
    ...process.env,
    DATA_DIR: dataDir,
    REDIS_KEY_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    MOCK_PAYMENTS_PORT: String(payments),
    MOCK_MESSAGING_PORT: String(messaging),
    MOCK_EMBEDDINGS_PORT: String(embeddings),
    AUTH_PORT: String(auth),
    ORDER_PORT: String(orders),
    WORKER_PORT: String(worker),
    LOCAL_POSTGRES_PORT: String(postgres),
    PAYMENTS_URL: url(payments),
    MESSAGING_URL: url(messaging),
    EMBEDDINGS_URL: url(embeddings),
    AUTH_JWKS_URL: `${url(auth)}/.well-known/jwks.json`,
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    SHUTDOWN_TIMEOUT_MS: '5000',
    // Not whatever the shell running the tests says: the tests choose Kafka and PGlite themselves.
    EVENT_BUS: 'redis',
    LOCAL_DATABASE: 'postgres',
    // The deterministic mock: the real model would be fetched into every test's fresh data folder.
    EMBEDDINGS_PROVIDER: 'mock',
    ...options.env,
  };
  const child = spawn(process.execPath, [...SERVICE_NODE_ARGS, 'scripts/dist/start.js', ...services], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const urls: Record<Service, string> = { 'mock-providers': url(payments), 'auth-service': url(auth), 'order-service': url(orders), worker: url(worker) };

  const run: LauncherRun = {
    dataDir,
    urls,
    readyUrls: Object.fromEntries(Object.entries(urls).map(([name, base]) => [name, `${base}/health/ready`])) as Record<Service, string>,
    pid: child.pid!,
    output: () => output,
    exited,
    waitFor: (pattern, timeoutMs) =>
      new Promise((resolve, reject) => {
        const deadline = AbortSignal.timeout(timeoutMs);
        const check = () => {
          const match = output.match(pattern);
          if (match) finish(() => resolve(match));
        };
        const fail = (why: string) => finish(() => reject(new Error(`${why} before the launcher printed ${pattern}. Output:\n${output.slice(-8_000)}`)));
        const onDeadline = () => fail(`${timeoutMs} ms passed`);
        const onExit = () => fail('the launcher exited');
        const finish = (settle: () => void) => {
          child.stdout.off('data', check);
          child.stderr.off('data', check);
          child.off('exit', onExit);
          deadline.removeEventListener('abort', onDeadline);
          settle();
        };
        child.stdout.on('data', check);
        child.stderr.on('data', check);
        child.once('exit', onExit);
        deadline.addEventListener('abort', onDeadline);
        check();
        if (!running()) onExit();
      }),
    pids: (service) => [...output.matchAll(new RegExp(`\\s${service} started \\(pid (\\d+)\\)`, 'g'))].map((match) => Number(match[1])),
    interrupt: () => {
      if (running()) child.kill('SIGINT');
      return exited;
    },
    async cleanUp() {
      if (running()) {
        child.kill('SIGINT');
        await once(child, 'exit', { signal: AbortSignal.timeout(30_000) }).catch(() => undefined);
      }
      for (const pid of [...SERVICES.flatMap((service) => run.pids(service)), ...(await processesUsing(dataDir)), child.pid!]) {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
      if (ownsData) await rm(dataDir, { recursive: true, force: true });
      await removeRedisPrefix(prefix);
    },
  };
  return run;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function answersReady(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
  return response?.ok === true;
}

/**
 * Every process whose command line names `folder` (the local Postgres server runs with
 * `-D <folder>/postgres/cluster`) or whose working folder is inside it: what would be left behind.
 */
export async function processesUsing(folder: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => '');
    if (cmdline.includes(folder) || cwd.startsWith(folder)) found.push(Number(entry));
  }
  return found;
}

/** Resolves once `condition` holds (checked every 100 ms); rejects after `timeoutMs` with `describe()`'s account. */
export async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number, describe: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${await describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `pid (command line)`, for failure messages. */
export async function describeProcess(pid: number): Promise<string> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '?');
  return `${pid} (${cmdline.split('\0').join(' ').trim()} in ${cwd})`;
}
