/**
 * Memory and start time of the whole system as a user runs it: `npm start`'s launcher
 * (`scripts/dist/start.js`) with its defaults, on the default ports: every service compiled, each its
 * own node process; one local Postgres server for auth, profile, posts, order and notification;
 * search-service's embedded PGlite; events on Redis Streams.
 *
 * Each repetition (BENCH_MEMORY_REPS) gets a fresh data folder and Redis key prefix, and:
 *  1. first start on the empty folder (the Postgres cluster is created, every migration runs), timed
 *     from spawning the launcher to its `CivilDIY is running (` line, that is until every service
 *     answered /health/ready; BENCH_IDLE_MS idle; memory;
 *  2. stop with SIGINT (Ctrl-C), checked: exit code 0 and no process of its tree left;
 *  3. second start on the same folder: timed; idle; memory;
 *  4. load through the gateway: one user publishes 2,000 posts and places 500 orders, 8 requests in
 *     flight; the run then awaits that the system has settled (every order confirmed or rejected,
 *     every post in the search index, no event, outbox row or task waiting in any service); idle;
 *     memory;
 *  5. stop (checked as in 2); the folder and the Redis keys are deleted.
 *
 * Memory is read for every process of the launcher's tree (`/proc/<pid>/task/<tid>/children`: the
 * Postgres server calls setsid, so its processes are not in its wrapper's process group) from
 * `/proc/<pid>/smaps_rollup`: Rss, the pages resident in the process, and Pss, each of those pages
 * divided by the number of processes mapping it. Summed over processes, RSS counts a shared page
 * (node's binary, mapped by ten services; Postgres' shared buffers, by every backend) once per
 * process and overstates what the system occupies; PSS sums to what the processes occupy together,
 * so the goals are judged on PSS. Processes are grouped by service: a node process by its working
 * directory (its workspace), the Postgres wrapper `sh` and every postgres process as `postgres`,
 * and whatever a process starts with it. The launcher (the operator's console, not the system) is
 * reported apart, as a Kafka broker would be (EVENT_BUS=kafka without KAFKA_BROKERS; there is none on
 * the default Redis event bus).
 *
 * Goals (the issue): idle ≤ 1.2 GB, after the load ≤ 1.5 GB (GB = 10⁹ bytes); every service ready
 * ≤ 20 s after the very first start and ≤ 8 s after a second one. Met when every repetition is.
 *
 * The gateway's per-address and per-user rate limits are lifted (`GATEWAY_RATE_LIMIT_*=0`): at their
 * defaults (600 and 300 requests a minute) the load alone would take eight minutes.
 *
 * `npx tsx --conditions=civildiy-source bench/memory.ts` prints tables; `run()` returns the figures,
 * `printReport()` prints them. Env: BENCH_MEMORY_REPS (3), BENCH_IDLE_MS (5000), REDIS_BROKER_URL
 * (the launcher's Redis too).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { removeRedisPrefix, repositoryRoot, type RegisteredUser } from '@civildiy/common/testing';
import { SERVICES } from '@civildiy/common/topology';
import { createPost } from './post-visibility.ts';
import { childrenOf, smapsRollup } from './proc-memory.ts';
import { buildOnce, call, grantRole, loginUser, onInterrupt, printTable, registerUser, sleep, stopAll } from './system.ts';

const REPS = Number(process.env.BENCH_MEMORY_REPS ?? 3);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 5_000);
const POSTS = 2_000;
const ORDERS = 500;
const IN_FLIGHT = 8;
const GATEWAY = 'http://127.0.0.1:8000';
/** Every port `npm start` binds by default: the services', the gateway's operations port (GATEWAY_OPS_PORT) and the local Postgres server's (LOCAL_POSTGRES_PORT). */
const DEFAULT_PORTS = [...SERVICES.flatMap((service) => service.ports), 8009, 5433];
const START_TIMEOUT_MS = 120_000;
const SETTLE_TIMEOUT_MS = 300_000;
const POLL_MS = 250;
/** As on Ctrl-C of the benchmark: SIGINT to the launcher, SIGKILL when it has not exited this long after. */
const KILL_AFTER_MS = 20_000;
/** 10⁹ bytes in MiB. */
const GB = 1e9 / 2 ** 20;

/** The issue's goals: PSS of the system in MiB, times to ready in ms. */
export const GOALS = { idleMiB: 1.2 * GB, loadedMiB: 1.5 * GB, firstStartMs: 20_000, secondStartMs: 8_000 };

export const PHASES = ['first start, idle', 'second start, idle', 'after load'] as const;
export type Phase = (typeof PHASES)[number];

/** The launcher's own group, and a local Kafka broker's: reported apart, not in the system's total. */
const LAUNCHER = 'launcher';
const KAFKA_BROKER = 'kafka broker';

/** Memory of a group of processes (MiB). */
export interface GroupMemory {
  processes: number;
  rssMiB: number;
  pssMiB: number;
  /** The anonymous part of PSS (heaps, stacks): what the processes made themselves rather than mapped from files. */
  pssAnonMiB: number;
}

/** One reading of the launcher's tree. */
export interface MemorySnapshot {
  /** By group (a service, `postgres`): what the goals count. */
  system: Record<string, GroupMemory>;
  /** The sums over {@link system}. */
  total: GroupMemory;
  /** Not the system: the launcher, and a Kafka broker when there is one. */
  apart: Record<string, GroupMemory>;
}

/** What the load phase did. */
export interface LoadFigures {
  posts: number;
  orders: number;
  confirmed: number;
  rejected: number;
  /** Posts whose search indexing failed for good. */
  indexFailed: number;
  /** From the first request to the last answer. */
  sendMs: number;
  /** From the last answer until the system had settled. */
  settleMs: number;
}

export interface Repetition {
  firstStartMs: number;
  secondStartMs: number;
  /** The machine's 1-minute load average when each start began: other processes slow a start down. */
  loadAtStarts: [number, number];
  memory: Record<Phase, MemorySnapshot>;
  load: LoadFigures;
  /** Unclean stops: an exit code other than 0, SIGKILL needed, processes that outlived the launcher. */
  problems: string[];
}

export interface MemoryResult {
  reps: number;
  idleMs: number;
  node: string;
  cpus: number;
  goals: typeof GOALS;
  repetitions: Repetition[];
}

function progress(line: string): void {
  process.stderr.write(`[memory bench] ${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// The launcher

/** How the launcher exited. */
interface LauncherExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It had to be killed: it did not exit within {@link KILL_AFTER_MS} of SIGINT. */
  killed: boolean;
}

/** `npm start`'s launcher as a user runs it, its output watched, stopped as Ctrl-C stops it. */
class Launcher {
  private readonly lines: string[] = [];
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The ms from spawn to the `CivilDIY is running (` line. */
  private readonly running: Promise<number>;
  private stopping: Promise<LauncherExit> | undefined;

  private constructor(
    private readonly child: ChildProcess,
    spawnedAt: number,
  ) {
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    createInterface({ input: child.stderr! }).on('line', (line) => this.keep(line));
    const stdout = createInterface({ input: child.stdout! });
    stdout.on('line', (line) => this.keep(line));
    this.running = new Promise((resolve, reject) => {
      stdout.on('line', (line) => {
        if (line.includes('CivilDIY is running (')) resolve(performance.now() - spawnedAt);
        else if (line.includes('CivilDIY is partly running (')) reject(new Error('is only partly running (a service did not become ready)'));
      });
      void this.exited.then(({ code, signal }) => reject(new Error(`exited (${code ?? signal}) before every service was ready`)));
      AbortSignal.timeout(START_TIMEOUT_MS).addEventListener('abort', () => reject(new Error(`is not running ${START_TIMEOUT_MS / 1000} s after it started`)));
    });
    this.running.catch(() => undefined);
    // Last resort when the benchmark exits without stopping it (a second Ctrl-C): the services and
    // Postgres stop by themselves once the launcher is gone.
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    void this.exited.then(() => process.off('exit', killOnExit));
  }

  /** Spawns `node scripts/dist/start.js` (built already) in the repository with `env` added to ours. */
  static start(env: Record<string, string>): Launcher {
    const spawnedAt = performance.now();
    const child = spawn(process.execPath, ['--enable-source-maps', 'scripts/dist/start.js'], {
      cwd: repositoryRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a Ctrl-C in the terminal reaches the benchmark only, which stops the launcher.
      detached: true,
    });
    return new Launcher(child, spawnedAt);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Resolves with the ms from spawn until every service was ready.
   * @throws Error with its output when it is only partly running, exits or takes too long (it is stopped first).
   */
  async untilRunning(): Promise<number> {
    try {
      return await this.running;
    } catch (error) {
      await this.stop();
      throw new Error(`npm start ${(error as Error).message}; ${this.lastOutput()}`);
    }
  }

  /** SIGINT, as Ctrl-C; SIGKILL after {@link KILL_AFTER_MS}. Resolves with how it exited; idempotent. */
  stop(): Promise<LauncherExit> {
    this.stopping ??= (async () => {
      let killed = false;
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill('SIGINT');
        const timer = setTimeout(() => {
          killed = true;
          this.child.kill('SIGKILL');
        }, KILL_AFTER_MS);
        await this.exited.finally(() => clearTimeout(timer));
      }
      return { ...(await this.exited), killed };
    })();
    return this.stopping;
  }

  /** Its last lines, for an error message. */
  lastOutput(): string {
    return `npm start's last output:\n${this.lines.join('\n')}`;
  }

  private keep(line: string): void {
    this.lines.push(line);
    if (this.lines.length > 60) this.lines.shift();
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** @throws Error naming the busy ports when one of `npm start`'s default ports is taken (a developer's own `npm start`, say). */
async function assertDefaultPortsFree(): Promise<void> {
  const busy = (await Promise.all(DEFAULT_PORTS.map(async (port) => ((await portIsFree(port)) ? [] : [port])))).flat();
  if (busy.length > 0) {
    throw new Error(`Port(s) ${busy.join(', ')} on 127.0.0.1 are in use: the benchmark runs npm start on its default ports. Stop what holds them (another npm start?) and run it again.`);
  }
}

// ---------------------------------------------------------------------------------------------
// The launcher's process tree and its memory

interface TreeProcess {
  pid: number;
  group: string;
  /** `/proc/<pid>/stat`'s start time: tells the process from a later one with the same pid. */
  startTime: string;
}

/** Field `index` (1-based, as in proc(5)) of `/proc/<pid>/stat`, or undefined when the process is gone. */
async function statField(pid: number, index: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // The command (field 2) may hold spaces: count from the parenthesis that closes it (field 3 first).
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[index - 3];
}

/** The group of a child of the launcher: a node service by its workspace folder, the Postgres wrapper and server by the binary, else the program. */
function groupOf(argv: string[], cwd: string): string {
  const program = path.basename(argv[0] ?? '?');
  // The wrapper is `sh -c … sh …/bin/postgres -D …`, the server `…/bin/postgres -D …`.
  if (argv.some((arg) => path.basename(arg) === 'postgres')) return 'postgres';
  if (program === 'java' && argv.some((arg) => arg.includes('kafka'))) return KAFKA_BROKER;
  if (program === 'node' && cwd.startsWith(repositoryRoot + path.sep)) return path.relative(repositoryRoot, cwd);
  return program;
}

/** Every process of the launcher's tree, with its group: the launcher's children are grouped by {@link groupOf}, their descendants with them. */
async function processTree(launcherPid: number): Promise<TreeProcess[]> {
  const tree: TreeProcess[] = [];
  const visit = async (pid: number, group: string | undefined): Promise<void> => {
    const startTime = await statField(pid, 22);
    if (startTime === undefined) return; // exited meanwhile
    if (group === undefined) {
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
      group = groupOf(argv, await readlink(`/proc/${pid}/cwd`).catch(() => ''));
    }
    tree.push({ pid, group, startTime });
    for (const child of await childrenOf(pid)) await visit(child, group === LAUNCHER ? undefined : group);
  };
  await visit(launcherPid, LAUNCHER);
  return tree;
}

const noMemory = (): GroupMemory => ({ processes: 0, rssMiB: 0, pssMiB: 0, pssAnonMiB: 0 });

function addProcess(to: GroupMemory, kB: { rss: number; pss: number; pssAnon: number }): void {
  to.processes += 1;
  to.rssMiB += kB.rss / 1024;
  to.pssMiB += kB.pss / 1024;
  to.pssAnonMiB += kB.pssAnon / 1024;
}

/** Reads the memory of every process of the launcher's tree, by group. */
async function measureMemory(launcherPid: number): Promise<MemorySnapshot> {
  const snapshot: MemorySnapshot = { system: {}, total: noMemory(), apart: {} };
  for (const { pid, group } of await processTree(launcherPid)) {
    const kB = await smapsRollup(pid);
    if (!kB) continue;
    const apart = group === LAUNCHER || group === KAFKA_BROKER;
    addProcess(((apart ? snapshot.apart : snapshot.system)[group] ??= noMemory()), kB);
    if (!apart) addProcess(snapshot.total, kB);
  }
  return snapshot;
}

async function idleThenMeasure(launcher: Launcher): Promise<MemorySnapshot> {
  await sleep(IDLE_MS);
  return measureMemory(launcher.pid);
}

/** The processes of `tree` still running (a zombie counts as gone, a new process on a reused pid too). */
async function survivors(tree: TreeProcess[]): Promise<TreeProcess[]> {
  const alive = await Promise.all(tree.map(async (p) => (await statField(p.pid, 3)) !== 'Z' && (await statField(p.pid, 22)) === p.startTime));
  return tree.filter((_, index) => alive[index]);
}

/** Stops the launcher as Ctrl-C does and returns what went wrong: an exit code other than 0, SIGKILL needed, processes left (killed). */
async function stopChecked(launcher: Launcher, when: string): Promise<string[]> {
  const tree = await processTree(launcher.pid);
  const exit = await launcher.stop();
  const problems: string[] = [];
  if (exit.killed) problems.push(`${when}: the launcher had not exited ${KILL_AFTER_MS / 1000} s after SIGINT (killed)`);
  else if (exit.code !== 0) problems.push(`${when}: the launcher exited with ${exit.code ?? exit.signal}, not 0`);
  const left = await survivors(tree);
  if (left.length > 0) {
    problems.push(`${when}: ${left.length} process(es) outlived the launcher: ${left.map((p) => `${p.group} (pid ${p.pid})`).join(', ')}; killed`);
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // Gone since.
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The load

/** Runs `task(0)` … `task(count - 1)` with at most `window` in flight. */
async function inFlight(count: number, window: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

/** Polls `check` every {@link POLL_MS} until it returns true; it returns what is still missing otherwise. */
async function until(what: string, check: () => Promise<true | string>): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const outcome = await check();
    if (outcome === true) return;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${SETTLE_TIMEOUT_MS / 1000} s (${outcome})`);
    await sleep(POLL_MS);
  }
}

/** The SKUs of the catalog the payments provider accepts one of (it declines over €2,000). */
async function orderableSkus(): Promise<string[]> {
  const response = await call<{ items: { sku: string; priceCents: number }[] }>(`${GATEWAY}/catalog`);
  if (response.status !== 200) throw new Error(`GET /catalog: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.items.filter((item) => item.priceCents <= 200_000).map((item) => item.sku);
}

async function publishPost(user: RegisteredUser, index: number): Promise<void> {
  const { status } = await createPost(GATEWAY, user, index);
  if (status !== 201) throw new Error(`POST /posts: ${status}`);
}

async function placeOrder(user: RegisteredUser, sku: string): Promise<string> {
  const response = await call(`${GATEWAY}/orders`, { token: user.token, headers: { 'idempotency-key': randomUUID() }, body: { lines: [{ sku, quantity: 1 }] } });
  if (response.status !== 201) throw new Error(`POST /orders: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.id as string;
}

/** Awaits every order's end state (GET /orders/{id}); resolves with how many of each. */
async function ordersDecided(user: RegisteredUser, ids: string[]): Promise<{ confirmed: number; rejected: number }> {
  const undecided = new Set(ids);
  const decided = { confirmed: 0, rejected: 0 };
  await until('every order confirmed or rejected', async () => {
    const pending = [...undecided];
    await inFlight(pending.length, IN_FLIGHT, async (index) => {
      const id = pending[index]!;
      const status = (await call(`${GATEWAY}/orders/${id}`, { token: user.token })).body.status as string;
      if (status !== 'confirmed' && status !== 'rejected') return;
      decided[status] += 1;
      undecided.delete(id);
    });
    return undecided.size === 0 || `${undecided.size} of ${ids.length} still undecided`;
  });
  return decided;
}

/** Awaits the search index holding every post (none pending or claimed); resolves with how many failed for good. */
async function postsIndexed(user: RegisteredUser, posts: number): Promise<number> {
  let failed = 0;
  await until('every post in the search index', async () => {
    const { counts } = (await call<{ counts: { pending: number; claimed: number; done: number; failed: number } }>(`${GATEWAY}/search/index/status`, { token: user.token })).body;
    failed = counts.failed;
    return (counts.pending + counts.claimed === 0 && counts.done + counts.failed >= posts) || JSON.stringify(counts);
  });
  return failed;
}

/** Gauges read at scrape time that count work not done yet (a task queue's delayed jobs include schedules, so only waiting, active and prioritized). */
const BACKLOG_GAUGE = /^(civildiy_event_consumer_lag|civildiy_event_consumer_pending|civildiy_outbox_pending|civildiy_task_queue_depth)(\{[^}]*\})? (\S+)$/gm;

/** Awaits every service's backlog gauges at 0: no event undelivered or unacknowledged, no outbox row, no task waiting. */
async function backlogsEmpty(): Promise<void> {
  const services = SERVICES.filter((service) => service.name !== 'gateway');
  await until('every backlog empty', async () => {
    const outstanding: string[] = [];
    for (const service of services) {
      const text = await (await fetch(`http://127.0.0.1:${service.ports[0]}/metrics`)).text();
      for (const [, name, labels = '', value] of text.matchAll(BACKLOG_GAUGE)) {
        if (name === 'civildiy_task_queue_depth' && !/state="(waiting|active|prioritized)"/.test(labels)) continue;
        if (Number(value) !== 0) outstanding.push(`${name}${labels} ${value}`);
      }
    }
    return outstanding.length === 0 || outstanding.join(', ');
  });
}

/** One user's 2,000 posts and 500 orders through the gateway, then awaits the system's settling. */
async function applyLoad(env: Record<string, string>): Promise<LoadFigures> {
  const registered = await registerUser(GATEWAY, 'membench');
  // An operator: it reads the search index's state to know when the posts are indexed.
  await grantRole(env, registered.email);
  const user = { ...registered, token: await loginUser(GATEWAY, registered.email) };
  const skus = await orderableSkus();
  const orderIds: string[] = [];
  // Interleaved: every fifth request is an order.
  const orderEvery = (POSTS + ORDERS) / ORDERS;
  const started = performance.now();
  await inFlight(POSTS + ORDERS, IN_FLIGHT, async (index) => {
    if (index % orderEvery === orderEvery - 1) orderIds.push(await placeOrder(user, skus[orderIds.length % skus.length]!));
    else await publishPost(user, index);
  });
  const sent = performance.now();
  const { confirmed, rejected } = await ordersDecided(user, orderIds);
  const indexFailed = await postsIndexed(user, POSTS);
  await backlogsEmpty();
  return { posts: POSTS, orders: orderIds.length, confirmed, rejected, indexFailed, sendMs: sent - started, settleMs: performance.now() - sent };
}

// ---------------------------------------------------------------------------------------------
// A repetition

async function repetition(rep: number): Promise<Repetition> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'civildiy-memory-'));
  // As root, the Postgres server runs as user postgres, which must reach its folder inside this one.
  await chmod(dataDir, 0o755);
  const prefix = `bench-memory-${randomUUID().slice(0, 8)}`;
  const env = { DATA_DIR: dataDir, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'warn', GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '0', GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '0' };
  let launcher: Launcher | undefined;
  /** Starts the launcher once the default ports are checked free; resolves when every service is ready. */
  const start = async () => {
    await assertDefaultPortsFree();
    const load = loadavg()[0]!;
    launcher = Launcher.start(env);
    return { launcher, ms: await launcher.untilRunning(), load };
  };
  const cleanUp = async () => {
    await launcher?.stop();
    await rm(dataDir, { recursive: true, force: true });
    await removeRedisPrefix(prefix);
  };
  const forget = onInterrupt(cleanUp);
  const label = `rep ${rep}/${REPS}`;
  try {
    const first = await start();
    progress(`${label}: first start, every service ready in ${(first.ms / 1000).toFixed(1)} s`);
    const firstIdle = await idleThenMeasure(first.launcher);
    const problems = await stopChecked(first.launcher, 'stop after the first start');

    const second = await start();
    progress(`${label}: second start, every service ready in ${(second.ms / 1000).toFixed(1)} s`);
    const secondIdle = await idleThenMeasure(second.launcher);

    progress(`${label}: ${POSTS} posts and ${ORDERS} orders through the gateway…`);
    const load = await applyLoad(env).catch((error: unknown) => {
      throw new Error(`The load failed: ${(error as Error).message}\n${second.launcher.lastOutput()}`);
    });
    progress(`${label}: sent in ${(load.sendMs / 1000).toFixed(1)} s, settled ${(load.settleMs / 1000).toFixed(1)} s later`);
    const loaded = await idleThenMeasure(second.launcher);
    problems.push(...(await stopChecked(second.launcher, 'stop after the load')));
    for (const problem of problems) progress(`ERROR ${problem}`);

    const memory = { 'first start, idle': firstIdle, 'second start, idle': secondIdle, 'after load': loaded };
    return { firstStartMs: first.ms, secondStartMs: second.ms, loadAtStarts: [first.load, second.load], memory, load, problems };
  } finally {
    forget();
    await cleanUp();
  }
}

/** Builds once, then runs every repetition; see the module's comment. */
export async function run(): Promise<MemoryResult> {
  await buildOnce();
  const repetitions: Repetition[] = [];
  for (let rep = 1; rep <= REPS; rep++) repetitions.push(await repetition(rep));
  return { reps: REPS, idleMs: IDLE_MS, node: process.version, cpus: cpus().length, goals: GOALS, repetitions };
}

// ---------------------------------------------------------------------------------------------
// The report

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const perRep = (values: number[], digits = 0) => values.map((value) => value.toFixed(digits)).join(' / ');
const range = (values: number[], digits = 0) => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;

/** A table row for one group across repetitions (a repetition where the group had no process counts 0). */
function groupRow(label: string, groups: (GroupMemory | undefined)[]): Record<string, unknown> {
  const rss = groups.map((group) => group?.rssMiB ?? 0);
  const pss = groups.map((group) => group?.pssMiB ?? 0);
  return {
    group: label,
    processes: Math.max(...groups.map((group) => group?.processes ?? 0)),
    'RSS mean': mean(rss),
    'RSS per rep': perRep(rss),
    'PSS mean': mean(pss),
    'PSS per rep': perRep(pss),
  };
}

function printPhase(result: MemoryResult, phase: Phase): void {
  const snapshots = result.repetitions.map((repetition) => repetition.memory[phase]);
  const rows = (part: 'system' | 'apart') => {
    const names = [...new Set(snapshots.flatMap((snapshot) => Object.keys(snapshot[part])))];
    return names.map((name) => groupRow(part === 'apart' ? `${name} (apart)` : name, snapshots.map((snapshot) => snapshot[part][name])));
  };
  const byPss = (a: Record<string, unknown>, b: Record<string, unknown>) => (b['PSS mean'] as number) - (a['PSS mean'] as number);
  console.log(`\n${phase} (MiB; ${result.idleMs / 1000} s idle before reading; ${result.reps} rep(s))`);
  printTable([...rows('system').sort(byPss), groupRow('system total', snapshots.map((snapshot) => snapshot.total)), ...rows('apart')]);
}

function printStartTimes(result: MemoryResult): void {
  const first = result.repetitions.map((repetition) => repetition.firstStartMs / 1000);
  const second = result.repetitions.map((repetition) => repetition.secondStartMs / 1000);
  console.log('\nnpm start → every service ready (s, from spawning the launcher to its "CivilDIY is running" line)');
  printTable(
    result.repetitions.map(({ loadAtStarts }, index) => ({
      rep: index + 1,
      'first start (empty data folder)': first[index],
      'second start': second[index],
      'load average at the starts': `${loadAtStarts[0].toFixed(1)} / ${loadAtStarts[1].toFixed(1)}`,
    })),
  );
  console.log(`first start ${range(first, 1)} s, second start ${range(second, 1)} s`);
  console.log(`load average: the machine's 1-minute load when the start began (${result.cpus} CPUs; it counts the benchmark's own earlier phases too)`);
}

function printLoad(result: MemoryResult): void {
  console.log('\nLoad through the gateway (one user, 8 requests in flight)');
  printTable(
    result.repetitions.map(({ load }, index) => ({
      rep: index + 1,
      posts: load.posts,
      orders: load.orders,
      confirmed: load.confirmed,
      rejected: load.rejected,
      'index failed': load.indexFailed,
      'sent in s': load.sendMs / 1000,
      'settled after s': load.settleMs / 1000,
    })),
  );
}

function printGoals(result: MemoryResult): void {
  const goals = result.goals;
  const pss = (phase: Phase) => result.repetitions.map((repetition) => repetition.memory[phase].total.pssMiB);
  const seconds = (pick: (repetition: Repetition) => number) => result.repetitions.map((repetition) => pick(repetition) / 1000);
  const memoryGoal = (goal: string, limitMiB: number, values: number[]) => ({ goal, limit: limitMiB, shown: `≤ ${limitMiB.toFixed(0)} MiB (${((limitMiB * 2 ** 20) / 1e9).toFixed(1)} GB)`, digits: 0, values });
  const timeGoal = (goal: string, limitMs: number, values: number[]) => ({ goal, limit: limitMs / 1000, shown: `≤ ${limitMs / 1000} s`, digits: 1, values });
  const rows = [
    memoryGoal('idle after the first start, PSS', goals.idleMiB, pss('first start, idle')),
    memoryGoal('idle after the second start, PSS', goals.idleMiB, pss('second start, idle')),
    memoryGoal(`after ${POSTS} posts and ${ORDERS} orders, PSS`, goals.loadedMiB, pss('after load')),
    timeGoal('ready after the very first start', goals.firstStartMs, seconds((repetition) => repetition.firstStartMs)),
    timeGoal('ready after a second start', goals.secondStartMs, seconds((repetition) => repetition.secondStartMs)),
  ];
  console.log('\nAgainst the goals (met when every repetition is within the limit; GB = 10⁹ bytes)');
  printTable(
    rows.map(({ goal, limit, shown, digits, values }) => ({
      goal,
      limit: shown,
      mean: mean(values).toFixed(digits),
      'min–max': range(values, digits),
      verdict: Math.max(...values) <= limit ? 'met' : 'NOT met',
    })),
  );
}

/** Prints the figures {@link run} returned: memory per phase and group, start times, the load, the goals, problems. */
export function printReport(result: MemoryResult): void {
  console.log(`\nThe whole system under npm start (Node ${result.node}, ${result.reps} rep(s))`);
  for (const phase of PHASES) printPhase(result, phase);
  console.log(
    "\nRSS sums count a shared page (node's binary, Postgres' shared buffers) once in every process that maps it and overstate; " +
      'PSS divides each page among its sharers and sums to what the system occupies: the goals are judged on PSS.',
  );
  printStartTimes(result);
  printLoad(result);
  printGoals(result);
  const problems = result.repetitions.flatMap((repetition, index) => repetition.problems.map((problem) => `rep ${index + 1}, ${problem}`));
  for (const problem of problems) console.log(`ERROR ${problem}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  let result: MemoryResult;
  try {
    result = await run();
  } finally {
    await stopAll();
  }
  printReport(result);
  process.exit(result.repetitions.some((repetition) => repetition.problems.length > 0) ? 1 : 0);
}
