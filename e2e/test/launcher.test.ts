import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '@civildiy/common';
import { planEventTransport } from '../../scripts/launcher/event-transport.ts';
import { decideAfterExit, MAX_RESTARTS_PER_WINDOW, RESTART_WINDOW_MS } from '../../scripts/launcher/restart-policy.ts';
import { answersReady, isAlive, processesUsing, describeProcess, SERVICES, startLauncher, waitUntil, type LauncherRun } from './launcher-run.ts';

const START_TIMEOUT_MS = 60_000;

describe('npm start supervises the services', () => {
  const runs: LauncherRun[] = [];
  const launch = async (env?: Record<string, string>) => {
    const run = await startLauncher(env ? { env } : {});
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

  it('stops every service, then the local Postgres server, on SIGINT and exits 0', async () => {
    const run = await launch();
    await run.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);
    const pids = SERVICES.flatMap((service) => run.pids(service));
    expect(pids).toHaveLength(SERVICES.length);
    const [, postgresPid] = (await run.waitFor(/Postgres is ready at 127\.0\.0\.1:\d+ \(pid (\d+)\)/, 1_000)).map(Number);
    expect((await processesUsing(run.dataDir)).length, 'the server and its backends run in the data folder').toBeGreaterThan(1);

    const exit = await run.interrupt();

    expect(exit.code).toBe(0);
    expect(run.output()).toMatch(/CivilDIY stopped \(exit code 0\)/);
    expect(run.output()).toMatch(/every service has stopped: stopping Postgres/);
    expect(run.output()).toMatch(/database system is shut down/);
    expect([...pids, postgresPid!].filter(isAlive)).toEqual([]);
    expect(await processesUsing(run.dataDir)).toEqual([]);
  });

  it('leaves no process behind when the launcher itself is killed with SIGKILL: the services and the Postgres server stop by themselves', async () => {
    const run = await launch();
    await run.waitFor(/CivilDIY is running/, START_TIMEOUT_MS);
    const services = SERVICES.flatMap((service) => run.pids(service));
    const server = await processesUsing(run.dataDir);
    expect(server.length).toBeGreaterThan(1);

    process.kill(run.pid, 'SIGKILL');
    await run.exited;

    await waitUntil(async () => [...services, ...server].filter(isAlive).length === 0, 20_000, async () => `still alive: ${(await Promise.all([...services, ...server].filter(isAlive).map(describeProcess))).join('; ')}`);
    expect(await processesUsing(run.dataDir)).toEqual([]);
  });
});

describe('npm start with EMBEDDINGS_PROVIDER=model and no model to be had', () => {
  const runs: LauncherRun[] = [];
  const folders: string[] = [];
  afterEach(async () => {
    await Promise.all(runs.splice(0).map((run) => run.cleanUp()));
    await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
  });

  it('looks for the model while Postgres starts, then stops Postgres and exits 1 saying what to do; no service starts', async () => {
    // A Maven that cannot reach its repository, and no download: the fresh data folder can get no model.
    const offlineMaven = await mkdtemp(path.join(tmpdir(), 'civildiy-offline-maven-'));
    folders.push(offlineMaven);
    await writeFile(path.join(offlineMaven, 'mvn'), '#!/bin/sh\necho "[ERROR] Could not transfer artifact: Network is unreachable" >&2\nexit 1\n', { mode: 0o755 });
    const run = await startLauncher({ env: { EMBEDDINGS_PROVIDER: 'model', EMBEDDINGS_MODEL_DOWNLOAD: 'false', PATH: `${offlineMaven}:${process.env.PATH}` } });
    runs.push(run);

    const exit = await run.exited;

    expect(exit.code, run.output()).toBe(1);
    expect(run.output()).toMatch(/Postgres is ready at/);
    expect(run.output()).toMatch(/EMBEDDINGS_PROVIDER=model requires it/);
    expect(run.output()).toMatch(/database system is shut down/);
    expect(await processesUsing(run.dataDir)).toEqual([]);
    expect(SERVICES.flatMap((service) => run.pids(service))).toEqual([]);
  });

  it('refuses a bad EMBEDDINGS_* variable with exit code 78 before it starts anything', async () => {
    const run = await startLauncher({ env: { EMBEDDINGS_PROVIDER: 'always' } });
    runs.push(run);

    const exit = await run.exited;

    expect(exit.code, run.output()).toBe(78);
    expect(run.output()).toMatch(/EMBEDDINGS_PROVIDER/);
    expect(run.output()).not.toMatch(/starting Postgres/);
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
    const run = await startLauncher({ env: { EVENT_BUS: 'kafka', KAFKA_BROKERS: '', PATH: await pathWithoutJava() } });
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
    const run = await startLauncher({ env: { EVENT_BUS: 'kafka', KAFKA_BROKERS: '127.0.0.1:1', PATH: await pathWithoutJava() }, services: ['mock-providers'] });
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
