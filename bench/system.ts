/**
 * Benchmark support: the order slice from `startSystem` (`@civildiy/common/testing`, the same one the
 * e2e tests use) with benchmark defaults (quiet logs; the compiled services run with plain node, as
 * `npm start` runs them), stopped on Ctrl-C or a throw too; plus HTTP and statistics helpers.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { repositoryRoot, SLICE_SERVICES, startSystem, type SliceService, type SystemService, type SystemUnderTest } from '@civildiy/common/testing';

export const REDIS_URL = process.env.REDIS_BROKER_URL ?? 'redis://127.0.0.1:6379';

/** The services of the order slice, in start order. */
export const SERVICES = SLICE_SERVICES;
export type ServiceName = SliceService;
/** Every service of the system (the memory benchmark measures them all). */
export { SYSTEM_SERVICES } from '@civildiy/common/testing';
export type Slice = SystemUnderTest;

export interface SliceOptions {
  /** The processes to start. Default: the order slice. */
  services?: readonly SystemService[];
  /** Extra environment for every process (wins over the defaults). */
  env?: Record<string, string>;
}

/** One Ctrl-C reaches a benchmark up to three times (terminal, npm, tsx relaying it): a signal this soon after the first is the same one. */
const REPEATED_SIGNAL_MS = 2_000;

const live = new Set<Slice>();
/** What {@link stopAll} runs besides stopping the slices (see {@link onInterrupt}). */
const cleanups = new Set<() => Promise<unknown>>();
let handlersInstalled = false;

function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // Last resort on a hard exit: no async work possible, so kill the children outright.
  process.on('exit', () => {
    for (const slice of live) for (const p of slice.processes.values()) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  });
  let interruptedAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interruptedAt === undefined) {
      interruptedAt = Date.now();
      console.error(`\n${signal}: stopping the benchmark's system(s)… (Ctrl-C again to exit now)`);
      void stopAll().finally(() => process.exit(130));
    } else if (Date.now() - interruptedAt > REPEATED_SIGNAL_MS) {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/**
 * Registers `cleanup` (stopping a system the benchmark started itself, e.g. `npm start`'s launcher)
 * to run on Ctrl-C or SIGTERM, and in {@link stopAll}; returns its removal.
 */
export function onInterrupt(cleanup: () => Promise<unknown>): () => void {
  installCleanupHandlers();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** Stops every slice still running and runs every {@link onInterrupt} cleanup (for `finally` blocks and signal handlers). */
export async function stopAll(): Promise<void> {
  const stopping = [...live].map((slice) => slice.stop());
  const cleaning = [...cleanups].map((cleanup) => cleanup());
  await Promise.allSettled([...stopping, ...cleaning]);
}

let build: Promise<void> | undefined;

/**
 * Compiles every workspace and the launcher (`node scripts/build.mjs --quiet`, as `npm start` does;
 * incremental, a no-op build takes ~0.1 s), once per benchmark process.
 * @throws Error with the build's output when it fails.
 */
export function buildOnce(): Promise<void> {
  build ??= promisify(execFile)(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: repositoryRoot }).then(() => undefined);
  return build;
}

/**
 * Starts the slice or the chosen services (logs at warn unless `env.LOG_LEVEL` says otherwise) and
 * resolves when every process is ready. The services run compiled (`dist/main.js`, built first by
 * {@link buildOnce}) with plain node as under `npm start`; BENCH_TYPESCRIPT=1 runs their sources
 * through tsx instead. Their databases are on a local Postgres server as under `npm start`;
 * BENCH_LOCAL_DATABASE=pglite embeds PGlite in each service instead (the stack before the server).
 */
export async function startSlice(options: SliceOptions = {}): Promise<Slice> {
  installCleanupHandlers();
  const compiled = process.env.BENCH_TYPESCRIPT !== '1';
  const databases = process.env.BENCH_LOCAL_DATABASE === 'pglite' ? 'pglite' : 'local-postgres';
  if (compiled) await buildOnce();
  const start = () =>
    startSystem({ ...(options.services ? { services: options.services } : {}), env: { LOG_LEVEL: 'warn', ...options.env }, readyTimeoutMs: 120_000, compiled, databases });
  let system: Slice;
  try {
    system = await start();
  } catch (error) {
    // The ports are picked free and released before the services bind them; another process (an
    // outgoing connection's ephemeral port) may take one meanwhile. startSystem stopped what it had
    // started: try once more on new ports.
    if (!String(error instanceof Error ? error.message : error).includes('EADDRINUSE')) throw error;
    console.error('a port was taken while the slice started (EADDRINUSE); starting it again on new ports');
    system = await start();
  }
  live.add(system);
  const stop = system.stop.bind(system);
  system.stop = (graceMs) => stop(graceMs).finally(() => live.delete(system));
  return system;
}

/** JSON over HTTP (optionally with a bearer token); registering benchmark users. */
export { grantRole, httpCall as call, loginUser, registerUser } from '@civildiy/common/testing';

/** Percentile (nearest rank) of an ascending-sorted array. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** p50/p95/p99/max of a list of numbers. */
export function summary(values: number[]): { n: number; p50: number; p95: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/** Prints rows as an aligned text table. */
export function printTable(rows: Record<string, unknown>[]): void {
  if (rows.length === 0) return;
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padStart(widths[i]!)).join('  ');
  console.log(line(columns));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(columns.map((c) => cell(r[c]))));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Clock ticks per second of /proc's CPU times (Linux: 100). */
const CLK_TCK = 100;

/** utime + stime of a process, in ms. */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** utime + stime (ms) of every process whose command name is `command` (e.g. `postgres`: the server and its backends), by pid. */
export async function commandCpuMs(command: string): Promise<Map<number, number>> {
  const byPid = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
    if (comm.trim() !== command) continue;
    const ms = await cpuMs(Number(entry)).catch(() => undefined);
    if (ms !== undefined) byPid.set(Number(entry), ms);
  }
  return byPid;
}

/**
 * CPU time (ms) the processes of two {@link commandCpuMs} readings used in between: a process that
 * exited meanwhile counts for nothing (its last share is lost), one that started counts whole.
 */
export function cpuUsedBetween(before: Map<number, number>, after: Map<number, number>): number {
  let used = 0;
  for (const [pid, ms] of after) used += ms - (before.get(pid) ?? 0);
  return used;
}

/**
 * Resident memory of a process, in MiB, from /proc/<pid>/status: now (`VmRSS`), at its peak
 * (`VmHWM`), and now split into anonymous memory (`RssAnon`: heaps) and mapped files (`RssFile`).
 */
export async function residentMemoryMiB(pid: number): Promise<{ rss: number; peak: number; anon: number; file: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const mib = (field: string) => Math.round(Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) / 1024);
  return { rss: mib('VmRSS'), peak: mib('VmHWM'), anon: mib('RssAnon'), file: mib('RssFile') };
}

/** Busy and total jiffies of the whole machine (all CPUs), from /proc/stat. */
export async function machineJiffies(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3]! + v[4]!;
  return { busy: total - idle, total };
}

export async function redisPid(): Promise<number | undefined> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const info = await redis.info('server');
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    // Only meaningful when Redis runs on this host and its /proc entry is readable.
    return Number.isFinite(pid) && (await cpuMs(pid).then(() => true).catch(() => false)) ? pid : undefined;
  } catch {
    return undefined;
  } finally {
    redis.disconnect();
  }
}

export async function cpuSnapshot(slice: Slice, redis: number | undefined): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, p] of slice.processes) out[name] = await cpuMs(p.child.pid!).catch(() => Number.NaN);
  const self = process.cpuUsage();
  out['generator (bench)'] = (self.user + self.system) / 1000;
  if (redis) out['redis-server'] = await cpuMs(redis).catch(() => Number.NaN);
  return out;
}

