/**
 * Task-queue benchmark: our task layer (`TaskClient` + `TaskWorker`) against bare BullMQ on the same
 * Redis, in the same run.
 *
 * 1. Throughput: for each repetition and mode (interleaved, order alternating), enqueue JOBS no-op
 *    jobs from this process (WINDOW enqueues in flight) → enqueue rate; then ONE forked worker
 *    process (fresh per round) drains them with concurrency 50 → drain rate, and its CPU time per job. Bare BullMQ gets the same job options
 *    our layer sets (attempts, jittered backoff, completed jobs kept by age, failed jobs kept).
 * 2. Batch enqueue: `TaskClient.enqueueMany` against `Queue.addBulk`.
 * 3. Latency: enqueue → `ref.result()` at a steady RATE tasks/s for SECONDS (after 2 s of warm-up
 *    at the same rate), one worker process, p50/p99/max, LATENCY_REPS rounds; bare BullMQ `add` →
 *    `job.waitUntilFinished` for reference.
 *
 * `npx tsx bench/tasks.ts` prints a table; `run()` returns the figures, `printReport()` prints them.
 * Env: REDIS_BROKER_URL, BENCH_JOBS (20000), BENCH_REPS (5), BENCH_RATE (1000), BENCH_SECONDS (10),
 * BENCH_LATENCY_REPS (3), BENCH_QUIET=1 (no progress lines).
 * The machine's load average is printed too: on a shared machine, other processes move every figure.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Queue, QueueEvents, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { z } from 'zod';
import { createLogger } from '@civildiy/common';
import { TaskClient, defineTask } from '@civildiy/common/tasks';

/** The no-op task of the benchmark (also imported by the worker process). */
export const benchNoop = defineTask({
  name: 'bench.noop',
  queue: 'bench-ours',
  input: z.object({ n: z.number().int() }),
  output: z.object({ n: z.number().int() }),
});

const REDIS_URL = process.env.REDIS_BROKER_URL ?? 'redis://127.0.0.1:6379';
const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const REPS = Number(process.env.BENCH_REPS ?? 5);
const RATE = Number(process.env.BENCH_RATE ?? 1_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const LATENCY_REPS = Number(process.env.BENCH_LATENCY_REPS ?? 3);
const CONCURRENCY = 50;
const WINDOW = 100;
const BARE_QUEUE = 'bench-bare';
/** What our layer sets on every job, given to bare BullMQ too (with BullMQ's built-in jittered backoff). */
const BARE_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
  removeOnComplete: { age: 24 * 3600 },
  removeOnFail: false,
};

type Mode = 'bare' | 'bare-als' | 'ours';
const logger = createLogger({ service: 'bench', level: 'warn', pretty: false });
const runId = Math.random().toString(36).slice(2, 8);
let prefixCounter = 0;

/** The forked worker process, with a request/response helper over IPC. */
class WorkerProcess {
  private constructor(private readonly child: ChildProcess) {}

  static async start(): Promise<WorkerProcess> {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const child = fork(path.join(here, 'tasks-worker.ts'), [], {
      execArgv: ['--conditions=civildiy-source', '--import', 'tsx'],
      cwd: path.resolve(here, '..'),
      env: { ...process.env, REDIS_BROKER_URL: REDIS_URL },
    });
    const worker = new WorkerProcess(child);
    await worker.next();
    return worker;
  }

  private next(): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`bench worker exited with ${code}`));
      this.child.once('exit', onExit);
      this.child.once('message', (message: Record<string, unknown>) => {
        this.child.off('exit', onExit);
        resolve(message);
      });
    });
  }

  request(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    const reply = this.next();
    this.child.send(command);
    return reply;
  }

  async stop(): Promise<void> {
    this.child.send({ cmd: 'exit' });
    await new Promise((resolve) => this.child.once('exit', resolve));
  }
}

/** Runs `count` calls of `add(i)` with at most `window` in flight; returns the elapsed ms. */
async function windowed(count: number, window: number, add: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < count) await add(next++);
    }),
  );
  return performance.now() - started;
}

async function removePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
    cursor = nextCursor;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** One throughput round of `mode`: enqueue rate (this process), then drain rate (worker process). */
async function throughputRound(mode: Mode, jobs: number, redis: Redis): Promise<{ enqueue: number; drain: number; cpu: number }> {
  const prefix = `bench-${runId}-${prefixCounter++}`;
  let enqueueMs: number;
  let queueName: string;
  if (mode === 'ours') {
    const client = new TaskClient({ connection: redis, prefix, logger, registry: new Registry() });
    enqueueMs = await windowed(jobs, WINDOW, (n) => client.enqueue(benchNoop, { n }));
    await client.close();
    queueName = benchNoop.queue;
  } else {
    const queue = new Queue(BARE_QUEUE, { connection: redis, prefix });
    enqueueMs = await windowed(jobs, WINDOW, (n) => queue.add('bench.noop', { n }, BARE_OPTIONS));
    await queue.close();
    queueName = BARE_QUEUE;
  }
  // A fresh process per round: one mode's process-wide state (AsyncLocalStorage hooks, JIT) never
  // helps or hurts the other.
  const worker = await WorkerProcess.start();
  const { ms, cpuUsPerJob } = (await worker.request({ cmd: 'drain', mode, prefix, queue: queueName, count: jobs, concurrency: CONCURRENCY })) as {
    ms: number;
    cpuUsPerJob: number;
  };
  await worker.stop();
  await removePrefix(redis, prefix);
  return { enqueue: (jobs / enqueueMs) * 1000, drain: (jobs / ms) * 1000, cpu: cpuUsPerJob };
}

/** Batch enqueue rate (jobs/s) in batches of 500. */
async function batchRound(mode: Mode, jobs: number, redis: Redis): Promise<number> {
  const prefix = `bench-${runId}-${prefixCounter++}`;
  const batch = 500;
  let elapsed: number;
  if (mode === 'ours') {
    const client = new TaskClient({ connection: redis, prefix, logger, registry: new Registry() });
    const started = performance.now();
    for (let i = 0; i < jobs; i += batch) await client.enqueueMany(benchNoop, Array.from({ length: batch }, (_, k) => ({ input: { n: i + k } })));
    elapsed = performance.now() - started;
    await client.close();
  } else {
    const queue = new Queue(BARE_QUEUE, { connection: redis, prefix });
    const started = performance.now();
    for (let i = 0; i < jobs; i += batch) {
      await queue.addBulk(Array.from({ length: batch }, (_, k) => ({ name: 'bench.noop', data: { n: i + k }, opts: BARE_OPTIONS })));
    }
    elapsed = performance.now() - started;
    await queue.close();
  }
  await removePrefix(redis, prefix);
  return (jobs / elapsed) * 1000;
}

/** Enqueue → result latencies (ms) at a steady `rate` for `seconds`. */
async function latencyRound(mode: Mode, redis: Redis, rate: number, seconds: number): Promise<number[]> {
  const prefix = `bench-${runId}-${prefixCounter++}`;
  const worker = await WorkerProcess.start();
  const queueName = mode === 'ours' ? benchNoop.queue : BARE_QUEUE;
  await worker.request({ cmd: 'serve', mode, prefix, queue: queueName, concurrency: CONCURRENCY });
  const latencies: number[] = [];
  let roundTrip: (n: number) => Promise<void>;
  let close: () => Promise<void>;
  if (mode === 'ours') {
    const client = new TaskClient({ connection: redis, prefix, logger, registry: new Registry() });
    await client.enqueue(benchNoop, { n: -1 }).then((ref) => ref.result()); // warm the result listener
    roundTrip = async (n) => {
      const started = performance.now();
      const ref = await client.enqueue(benchNoop, { n });
      await ref.result({ timeoutMs: 10_000 });
      latencies.push(performance.now() - started);
    };
    close = () => client.close();
  } else {
    const queue = new Queue(queueName, { connection: redis, prefix });
    queue.setMaxListeners(0); // waitUntilFinished adds a listener per waiting job
    const events = new QueueEvents(queueName, { connection: redis.duplicate(), prefix });
    await events.waitUntilReady();
    roundTrip = async (n) => {
      const started = performance.now();
      const job = await queue.add('bench.noop', { n }, BARE_OPTIONS);
      await job.waitUntilFinished(events, 10_000);
      latencies.push(performance.now() - started);
    };
    close = async () => {
      await events.close();
      await queue.close();
    };
  }
  // Two seconds at the same rate first, not recorded: the worker process is fresh (JIT, pools).
  await paced(rate, 2, roundTrip);
  latencies.length = 0;
  await paced(rate, seconds, roundTrip);
  await close();
  await worker.request({ cmd: 'stop' });
  await worker.stop();
  await removePrefix(redis, prefix);
  return latencies;
}

/** Progress on stderr (BENCH_QUIET=1 silences it). */
function progress(line: string): void {
  if (process.env.BENCH_QUIET !== '1') process.stderr.write(`[tasks bench] ${line}\n`);
}

/** Calls `send(i)` `rate` times a second for `seconds` (checked every millisecond) and waits for all. */
async function paced(rate: number, seconds: number, send: (i: number) => Promise<void>): Promise<void> {
  const total = rate * seconds;
  const pending: Promise<void>[] = [];
  const started = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    while (sent < due) pending.push(send(sent++));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(pending);
}

function pairedRatio(ours: number[], bare: number[]): number {
  return median(ours.map((value, index) => value / bare[index]!));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

function latencySummary(values: number[]): LatencySummary {
  return { count: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) };
}

interface Series {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

function series(samples: number[]): Series {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples };
}

/**
 * Runs every task benchmark and returns the figures: rates in jobs/s (median, min, max over the
 * repetitions), ratios ours/bare of the medians, latencies in ms.
 */
export async function run(): Promise<Record<string, unknown>> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const loadAtStart = loadavg();
  try {
    // Warm-up: JIT both paths and the worker process, not measured.
    for (const mode of ['bare', 'ours'] as const) {
      progress(`warm-up ${mode}`);
      await throughputRound(mode, Math.min(JOBS, 3_000), redis);
    }

    const rates: Record<Mode, { enqueue: number[]; drain: number[]; batch: number[]; cpu: number[] }> = {
      bare: { enqueue: [], drain: [], batch: [], cpu: [] },
      'bare-als': { enqueue: [], drain: [], batch: [], cpu: [] },
      ours: { enqueue: [], drain: [], batch: [], cpu: [] },
    };
    const orders: Mode[][] = [
      ['bare', 'ours', 'bare-als'],
      ['ours', 'bare-als', 'bare'],
      ['bare-als', 'bare', 'ours'],
    ];
    for (let rep = 0; rep < REPS; rep++) {
      for (const mode of orders[rep % orders.length]!) {
        const { enqueue, drain, cpu } = await throughputRound(mode, JOBS, redis);
        const batch = await batchRound(mode, JOBS, redis);
        rates[mode].enqueue.push(enqueue);
        rates[mode].drain.push(drain);
        rates[mode].batch.push(batch);
        rates[mode].cpu.push(cpu);
        progress(
          `rep ${rep + 1}/${REPS} ${mode}: enqueue ${Math.round(enqueue)}/s, batch ${Math.round(batch)}/s, drain ${Math.round(drain)}/s, worker CPU ${cpu.toFixed(1)} µs/job`,
        );
      }
    }
    const latencyRounds: Record<'ours' | 'bare', LatencySummary[]> = { ours: [], bare: [] };
    for (let rep = 0; rep < LATENCY_REPS; rep++) {
      for (const mode of rep % 2 === 0 ? (['ours', 'bare'] as const) : (['bare', 'ours'] as const)) {
        const summary = latencySummary(await latencyRound(mode, redis, RATE, SECONDS));
        latencyRounds[mode].push(summary);
        progress(`latency ${rep + 1}/${LATENCY_REPS} ${mode}: p50 ${summary.p50.toFixed(2)} ms, p99 ${summary.p99.toFixed(2)} ms (load ${loadavg()[0]!.toFixed(1)})`);
      }
    }
    const summary = (mode: Mode) => ({
      enqueue: series(rates[mode].enqueue),
      drain: series(rates[mode].drain),
      batchEnqueue: series(rates[mode].batch),
      workerCpuUsPerJob: series(rates[mode].cpu),
    });
    const ours = summary('ours');
    const bare = summary('bare');
    const bareAls = summary('bare-als');
    return {
      settings: { jobs: JOBS, repetitions: REPS, concurrency: CONCURRENCY, enqueueWindow: WINDOW, rate: RATE, seconds: SECONDS, latencyRounds: LATENCY_REPS },
      machine: { cpus: cpus().length, loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg() },
      throughput: { ours, bare, 'bare-als': bareAls },
      ratio: {
        enqueue: ours.enqueue.median / bare.enqueue.median,
        drain: ours.drain.median / bare.drain.median,
        batchEnqueue: ours.batchEnqueue.median / bare.batchEnqueue.median,
        /** bare/ours: the throughput ratio if the worker's CPU were the only bottleneck. */
        workerCpu: bare.workerCpuUsPerJob.median / ours.workerCpuUsPerJob.median,
        /** Median over repetitions of ours/bare within the same repetition (less sensitive to load drift). */
        enqueuePaired: pairedRatio(rates.ours.enqueue, rates.bare.enqueue),
        drainPaired: pairedRatio(rates.ours.drain, rates.bare.drain),
        batchEnqueuePaired: pairedRatio(rates.ours.batch, rates.bare.batch),
        /** ours against bare BullMQ with AsyncLocalStorage active, as in our services. */
        drainVsBareAls: ours.drain.median / bareAls.drain.median,
        workerCpuVsBareAls: bareAls.workerCpuUsPerJob.median / ours.workerCpuUsPerJob.median,
      },
      /** One entry per round (each RATE/s for SECONDS s). */
      latencyMs: latencyRounds,
    };
  } finally {
    await redis.quit();
  }
}

/** Prints the figures {@link run} returned: throughput and CPU per job against bare BullMQ, then latency rounds. */
export function printReport(result: Record<string, unknown>): void {
  const { throughput, ratio, latencyMs, settings, machine } = result as {
    throughput: Record<Mode, Record<string, Series>>;
    ratio: Record<string, number>;
    latencyMs: Record<'ours' | 'bare', LatencySummary[]>;
    settings: Record<string, number>;
    machine: { cpus: number; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  };
  const rate = (value: number) => Math.round(value).toLocaleString('en-US');
  const micros = (value: number) => value.toFixed(1);
  const cell = (series: Series, format: (value: number) => string) => `${format(series.median)} (${format(series.min)}–${format(series.max)})`.padEnd(26);
  console.log(`\nTask queue benchmark: ${settings.jobs} jobs × ${settings.repetitions} reps, one worker process, concurrency ${settings.concurrency}`);
  console.log('median (min–max)    | bare BullMQ               | bare + ALS active         | ours                      | ours/bare | paired | ours/bare+ALS');
  console.log('--------------------|---------------------------|---------------------------|---------------------------|-----------|--------|--------------');
  for (const [metric, label] of [
    ['enqueue', 'enqueue jobs/s'],
    ['batchEnqueue', 'batch enqueue jobs/s'],
    ['drain', 'drain jobs/s'],
  ] as const) {
    const [b, a, o] = [throughput.bare[metric]!, throughput['bare-als'][metric]!, throughput.ours[metric]!];
    const versusAls = metric === 'drain' ? `${(o.median / a.median).toFixed(2)}×` : '–';
    const paired = `${ratio[`${metric}Paired`]!.toFixed(2)}×`;
    console.log(`${label.padEnd(20)}| ${cell(b, rate)}| ${cell(a, rate)}| ${cell(o, rate)}| ${ratio[metric]!.toFixed(2)}×     | ${paired}  | ${versusAls}`);
  }
  const [cb, ca, co] = [throughput.bare.workerCpuUsPerJob!, throughput['bare-als'].workerCpuUsPerJob!, throughput.ours.workerCpuUsPerJob!];
  console.log(
    `${'worker CPU µs/job'.padEnd(20)}| ${cell(cb, micros)}| ${cell(ca, micros)}| ${cell(co, micros)}| ${(cb.median / co.median).toFixed(2)}×     | –      | ${(ca.median / co.median).toFixed(2)}×`,
  );
  console.log('paired: median over repetitions of ours/bare measured back to back; CPU row: bare/ours (higher is better for ours).');
  console.log('(enqueue does not involve the worker: bare + ALS enqueues exactly as bare does)');
  console.log(`\nLatency enqueue → result at ${settings.rate}/s for ${settings.seconds} s, ${settings.latencyRounds} rounds (ms: p50 / p99 / max)`);
  for (const mode of ['ours', 'bare'] as const) {
    const rounds = latencyMs[mode].map((l) => `${l.p50.toFixed(2)} / ${l.p99.toFixed(2)} / ${l.max.toFixed(1)}`);
    console.log(`${mode.padEnd(5)} ${rounds.join('   |   ')}`);
  }
  const load = (values: number[]) => values.map((value) => value.toFixed(1)).join(' ');
  console.log(`\nmachine: ${machine.cpus} CPUs, load average ${load(machine.loadAverageAtStart)} at start, ${load(machine.loadAverageAtEnd)} at end`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printReport(await run());
}
