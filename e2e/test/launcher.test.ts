import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '@civildiy/common';
import { freePort, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { planEventTransport } from '../../scripts/launcher/event-transport.ts';
import { decideAfterExit, MAX_RESTARTS_PER_WINDOW, RESTART_WINDOW_MS } from '../../scripts/launcher/restart-policy.ts';
import { root } from './system.ts';

/** A small system: a provider, a service with a database, one that calls auth, and the worker. */
const SERVICES = ['mock-providers', 'auth-service', 'order-service', 'worker'] as const;
type Service = (typeof SERVICES)[number];

/** `npm start` as a real process, on free ports, with its own Redis key prefix and data folder. */
interface LauncherRun {
  /** Each service's `/health/ready`. */
  readyUrls: Record<Service, string>;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `pattern` in the output; rejects after `timeoutMs` or when the launcher exits first. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** The pid of every process the launcher started for `service`, in start order (from its "started (pid N)" lines). */
  pids(service: Service): number[];
  /** SIGINT to the launcher; resolves with its exit. */
  interrupt(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops what is left (SIGKILL to every process it started), deletes the data folder and the Redis keys. */
  cleanUp(): Promise<void>;
}

async function startLauncher(extraEnv: Record<string, string> = {}, services: readonly Service[] = SERVICES): Promise<LauncherRun> {
  const [payments, messaging, embeddings, auth, orders, worker] = await Promise.all(Array.from({ length: 6 }, () => freePort()));
  const url = (port: number | undefined) => `http://127.0.0.1:${port}`;
  const dataDir = await mkdtemp(path.join(tmpdir(), 'civildiy-launcher-'));
  const prefix = uniquePrefix('launcher');
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
    PAYMENTS_URL: url(payments),
    MESSAGING_URL: url(messaging),
    EMBEDDINGS_URL: url(embeddings),
    AUTH_JWKS_URL: `${url(auth)}/.well-known/jwks.json`,
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    SHUTDOWN_TIMEOUT_MS: '5000',
    // Not whatever the shell running the tests says: the tests below choose Kafka themselves.
    EVENT_BUS: 'redis',
    ...extraEnv,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts', ...services], {
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

  const run: LauncherRun = {
    readyUrls: {
      'mock-providers': `${url(payments)}/health/ready`,
      'auth-service': `${url(auth)}/health/ready`,
      'order-service': `${url(orders)}/health/ready`,
      worker: `${url(worker)}/health/ready`,
    },
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
      for (const pid of [...SERVICES.flatMap((service) => run.pids(service)), child.pid!]) {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
      await rm(dataDir, { recursive: true, force: true });
      await removeRedisPrefix(prefix);
    },
  };
  return run;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function answersReady(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
  return response?.ok === true;
}

const START_TIMEOUT_MS = 60_000;

describe('npm start supervises the services', () => {
  const runs: LauncherRun[] = [];
  const launch = async (extraEnv?: Record<string, string>) => {
    const run = await startLauncher(extraEnv);
    runs.push(run);
    return run;
  };
  afterEach(async () => {
    await Promise.all(runs.splice(0).map((run) => run.cleanUp()));
  });

  it('restarts a service killed with SIGKILL until it is ready again, while the others keep their processes and stay ready', async () => {
    const run = await launch();
    await run.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);
    const [killed] = run.pids('worker');

    process.kill(killed!, 'SIGKILL');

    await run.waitFor(/worker was killed by SIGKILL; restarting it in 1 s \(restart 1\)/, 10_000);
    const [, restarted] = await run.waitFor(/worker is ready again \(pid (\d+)\)/, START_TIMEOUT_MS);
    expect(Number(restarted)).not.toBe(killed);
    expect(run.pids('worker')).toEqual([killed, Number(restarted)]);
    expect(await answersReady(run.readyUrls.worker), run.output()).toBe(true);
    for (const service of ['mock-providers', 'auth-service', 'order-service'] as const) {
      expect(run.pids(service)).toHaveLength(1);
      expect(isAlive(run.pids(service)[0]!)).toBe(true);
      expect(await answersReady(run.readyUrls[service]), `${service} answers /health/ready\n${run.output()}`).toBe(true);
    }
    expect(run.output()).not.toMatch(/(mock-providers|auth-service|order-service) (was killed|exited)/);
  });

  it('reports a service with an invalid configuration value and does not restart it, while the others run', async () => {
    const run = await launch({ WORKER_CONCURRENCY: 'abc' });

    await run.waitFor(/CivilDIY is partly running/, START_TIMEOUT_MS);

    expect(run.output()).toContain('WORKER_CONCURRENCY');
    expect(run.output()).toMatch(/worker exited with code 78 \(invalid configuration\).*Not restarting it/);
    expect(run.output()).toMatch(/GAVE UP\s+worker\s/);
    expect(run.pids('worker')).toHaveLength(1);
    for (const service of ['mock-providers', 'auth-service', 'order-service'] as const) {
      expect(run.output()).toMatch(new RegExp(`ready\\s+${service}\\s`));
      expect(await answersReady(run.readyUrls[service]), `${service} answers /health/ready\n${run.output()}`).toBe(true);
    }
    const exit = await run.interrupt();
    expect(exit.code).toBe(1);
    expect(run.pids('worker')).toHaveLength(1);
  });

  it('stops every service on SIGINT and exits 0', async () => {
    const run = await launch();
    await run.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);
    const pids = SERVICES.flatMap((service) => run.pids(service));
    expect(pids).toHaveLength(SERVICES.length);

    const exit = await run.interrupt();

    expect(exit.code).toBe(0);
    expect(run.output()).toMatch(/CivilDIY stopped \(exit code 0\)/);
    expect(pids.filter(isAlive)).toEqual([]);
  });
});

describe('npm start with EVENT_BUS=kafka', () => {
  const runs: LauncherRun[] = [];
  const folders: string[] = [];
  /** A PATH with nothing on it: no `java`, no `mvn` (the launcher and the services run from process.execPath). */
  const pathWithoutJava = async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'civildiy-no-java-'));
    folders.push(folder);
    return folder;
  };
  afterEach(async () => {
    await Promise.all(runs.splice(0).map((run) => run.cleanUp()));
    await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
  });

  it('without Java and without KAFKA_BROKERS, stops with one line saying what to install and exit code 1, no stack trace', async () => {
    const run = await startLauncher({ EVENT_BUS: 'kafka', KAFKA_BROKERS: '', PATH: await pathWithoutJava() });
    runs.push(run);

    const exit = await run.exited;

    expect(exit.code, run.output()).toBe(1);
    const lines = run.output().split('\n');
    const message = lines.filter((line) => line.includes('Java 17'));
    expect(message, run.output()).toHaveLength(1);
    expect(message[0]).toMatch(/^Kafka needs Java 17 or newer .* or use EVENT_BUS=redis\.$/);
    expect(run.output()).not.toMatch(/^\s+at /m);
    expect(run.output()).not.toContain('KafkaToolingMissingError');
    expect(run.pids('mock-providers')).toEqual([]);
  });

  it('with KAFKA_BROKERS set, starts no broker and runs on that cluster', async () => {
    // Without Java on the PATH, a broker start would fail: the run getting to "running" shows none was tried.
    const run = await startLauncher({ EVENT_BUS: 'kafka', KAFKA_BROKERS: '127.0.0.1:1', PATH: await pathWithoutJava() }, ['mock-providers']);
    runs.push(run);

    await run.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);

    expect(run.output()).toContain('events run on Kafka at 127.0.0.1:1 (KAFKA_BROKERS)');
    expect(run.output()).not.toContain('starting the Kafka broker');
    const exit = await run.interrupt();
    expect(exit.code).toBe(0);
  });
});

describe('the launcher event transport decision', () => {
  it('runs on Redis Streams by default, whatever KAFKA_BROKERS says', () => {
    expect(planEventTransport({})).toEqual({ kind: 'redis' });
    expect(planEventTransport({ EVENT_BUS: 'redis', KAFKA_BROKERS: 'kafka-1:9092' })).toEqual({ kind: 'redis' });
  });

  it('uses the cluster KAFKA_BROKERS names and starts no broker', () => {
    expect(planEventTransport({ EVENT_BUS: 'kafka', KAFKA_BROKERS: 'kafka-1:9092, kafka-2:9092' })).toEqual({ kind: 'kafka', brokers: ['kafka-1:9092', 'kafka-2:9092'] });
  });

  it('starts a local broker on KAFKA_PORT and KAFKA_CONTROLLER_PORT when KAFKA_BROKERS is unset or empty', () => {
    expect(planEventTransport({ EVENT_BUS: 'kafka' })).toEqual({ kind: 'local kafka', port: 9092, controllerPort: 9093 });
    expect(planEventTransport({ EVENT_BUS: 'kafka', KAFKA_BROKERS: '', KAFKA_PORT: '19092', KAFKA_CONTROLLER_PORT: '19093' })).toEqual({
      kind: 'local kafka',
      port: 19092,
      controllerPort: 19093,
    });
  });

  it('names a bad variable', () => {
    expect(() => planEventTransport({ EVENT_BUS: 'kafak' })).toThrow(ConfigError);
    expect(() => planEventTransport({ EVENT_BUS: 'kafka', KAFKA_BROKERS: 'kafka-1' })).toThrow(/KAFKA_BROKERS/);
    expect(() => planEventTransport({ EVENT_BUS: 'kafka', KAFKA_PORT: 'ninety' })).toThrow(/KAFKA_PORT/);
  });
});

// The crash-loop limit takes 31 s of backoff to reach with real processes; the rule itself is checked here.
describe('the launcher restart policy', () => {
  const now = 1_000_000_000;
  const killed = { code: null, signal: 'SIGKILL' as const };

  it('backs off 1, 2, 4, 8 and 16 s, then gives up on the crash after the fifth restart within a minute', () => {
    const restartTimes: number[] = [];
    const delays: number[] = [];
    for (let crash = 0; crash < MAX_RESTARTS_PER_WINDOW; crash++) {
      const decision = decideAfterExit(killed, { everReady: true, restartTimes }, now + crash);
      if (decision.action !== 'restart') throw new Error(`crash ${crash + 1} was not restarted`);
      delays.push(decision.delayMs);
      restartTimes.push(now + crash);
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
    expect(decideAfterExit(killed, { everReady: true, restartTimes }, now + 10).action).toBe('give up');
  });

  it('counts only the restarts of the last minute, so a service that crashes now and then restarts after 1 s again', () => {
    const longAgo = Array.from({ length: MAX_RESTARTS_PER_WINDOW }, (_, i) => now - RESTART_WINDOW_MS - i);
    expect(decideAfterExit(killed, { everReady: true, restartTimes: longAgo }, now)).toEqual({ action: 'restart', delayMs: 1_000 });
  });

  it('gives up at once on exit status 78 (invalid configuration), even for a service that was ready before', () => {
    expect(decideAfterExit({ code: 78, signal: null }, { everReady: true, restartTimes: [] }, now).action).toBe('give up');
  });

  it('gives up at once on a service that exits before it was ever ready', () => {
    expect(decideAfterExit({ code: 1, signal: null }, { everReady: false, restartTimes: [] }, now).action).toBe('give up');
  });
});
