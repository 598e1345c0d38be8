/**
 * Idle memory of every service of the system, each as its own process (see `system.ts`), ready and then
 * idle for IDLE_MS, then per process
 *  - VmRSS (and VmHWM, the peak) from `/proc/<pid>/status`, where pid is the spawned child, which
 *    is the node process itself (`node --import tsx src/main.ts` loads tsx in-process; the run
 *    checks that the pid's cmdline is that node command). tsx sometimes starts its esbuild service
 *    (a Go binary, ~12 MiB) as a child on a transform-cache miss: that child is reported apart,
 *    since it is an artefact of running TypeScript through tsx, not of the service;
 *  - the `process_resident_memory_bytes` gauge of the service's own `/metrics`, and for where the
 *    memory goes `nodejs_heap_size_used_bytes` and `nodejs_external_memory_bytes` (ArrayBuffers:
 *    the embedded PGlite database's WASM memory lives there).
 * Repeated REPS times, each with a fresh system (fresh data folder and Redis prefix).
 *
 * `npx tsx bench/memory.ts` prints a table; `run()` returns the figures.
 * Env: BENCH_MEMORY_REPS (3), BENCH_IDLE_MS (5000), REDIS_BROKER_URL.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { SystemService } from '@civildiy/common/testing';
import { SYSTEM_SERVICES as SERVICES, printTable, sleep, startSlice, stopAll } from './system.ts';

type ServiceName = SystemService;

const REPS = Number(process.env.BENCH_MEMORY_REPS ?? 3);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 5_000);
const MiB = 1024 * 1024;

interface Sample {
  pid: number;
  rssMiB: number;
  hwmMiB: number;
  metricsRssMiB: number;
  /** V8 heap in use and memory outside it (`external`: ArrayBuffers, e.g. PGlite's WASM memory). */
  heapUsedMiB: number;
  externalMiB: number;
  threads: number;
  /** Child processes (only tsx's esbuild service has been seen) and their RSS. */
  children: { command: string; rssMiB: number }[];
}

async function procStatus(pid: number): Promise<{ rssKiB: number; hwmKiB: number; threads: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM'), threads: field('Threads') };
}

/** Children of `pid` (every thread's `children` file). */
async function childPids(pid: number): Promise<number[]> {
  const { readdir } = await import('node:fs/promises');
  const tids = await readdir(`/proc/${pid}/task`);
  const all = await Promise.all(tids.map((tid) => readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '')));
  return all.flatMap((s) => s.trim().split(/\s+/).filter(Boolean).map(Number));
}

/** Gauges of a service's `/metrics` (default labels such as `service` allowed), in bytes. */
async function metricGauges(url: string): Promise<{ rss: number; heapUsed: number; external: number }> {
  const text = await (await fetch(url)).text();
  const gauge = (name: string) => {
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([0-9.e+]+)`, 'm').exec(text);
    if (!match) throw new Error(`no ${name} at ${url}`);
    return Number(match[1]);
  };
  return { rss: gauge('process_resident_memory_bytes'), heapUsed: gauge('nodejs_heap_size_used_bytes'), external: gauge('nodejs_external_memory_bytes') };
}

async function measureOnce(): Promise<Record<ServiceName, Sample>> {
  const slice = await startSlice({ services: SERVICES });
  try {
    await sleep(IDLE_MS);
    const out = {} as Record<ServiceName, Sample>;
    for (const name of SERVICES) {
      const pid = slice.processes.get(name)!.child.pid!;
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      if (cmdline[0] !== process.execPath || !cmdline.includes('tsx') || !cmdline.includes('src/main.ts')) {
        throw new Error(`pid ${pid} of ${name} is not the service's node process: ${cmdline.join(' ')}`);
      }
      // Read both sources back to back so they describe the same moment.
      const status = await procStatus(pid);
      const gauges = await metricGauges(slice.metricsUrls[name]);
      // tsx may have started its esbuild service (a Go binary) as a child: counted apart.
      const children: Sample['children'] = [];
      for (const child of await childPids(pid)) {
        const command = (await readFile(`/proc/${child}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] ?? '';
        const childStatus = await procStatus(child).catch(() => undefined);
        if (childStatus) children.push({ command: path.basename(command), rssMiB: childStatus.rssKiB / 1024 });
      }
      out[name] = { pid, rssMiB: status.rssKiB / 1024, hwmMiB: status.hwmKiB / 1024, metricsRssMiB: gauges.rss / MiB, heapUsedMiB: gauges.heapUsed / MiB, externalMiB: gauges.external / MiB, threads: status.threads, children };
    }
    return out;
  } finally {
    await slice.stop();
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const reps: Record<ServiceName, Sample>[] = [];
  try {
    for (let i = 0; i < REPS; i++) reps.push(await measureOnce());
  } finally {
    await stopAll();
  }
  const perService = Object.fromEntries(
    SERVICES.map((name) => {
      const rss = reps.map((r) => r[name].rssMiB);
      const gauge = reps.map((r) => r[name].metricsRssMiB);
      const hwm = reps.map((r) => r[name].hwmMiB);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      return [
        name,
        {
          rssMiB: rss,
          rssMeanMiB: mean(rss),
          rssMinMiB: Math.min(...rss),
          rssMaxMiB: Math.max(...rss),
          metricsRssMiB: gauge,
          metricsRssMeanMiB: mean(gauge),
          peakRssMeanMiB: mean(hwm),
          heapUsedMeanMiB: mean(reps.map((r) => r[name].heapUsedMiB)),
          externalMiB: reps.map((r) => r[name].externalMiB),
          externalMeanMiB: mean(reps.map((r) => r[name].externalMiB)),
          threads: reps.map((r) => r[name].threads),
          childRssMiB: reps.map((r) => r[name].children.reduce((sum, c) => sum + c.rssMiB, 0)),
          children: reps.map((r) => r[name].children.map((c) => c.command)),
        },
      ];
    }),
  );
  const totals = reps.map((r) => SERVICES.reduce((sum, s) => sum + r[s].rssMiB, 0));
  return { reps: REPS, idleMs: IDLE_MS, node: process.version, perService, totalRssMiB: totals };
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  const result = await run();
  const perService = result.perService as Record<string, { rssMeanMiB: number; rssMiB: number[]; rssMaxMiB: number; rssMinMiB: number; metricsRssMeanMiB: number; metricsRssMiB: number[]; peakRssMeanMiB: number; heapUsedMeanMiB: number; externalMiB: number[]; threads: number[]; childRssMiB: number[] }>;
  console.log(`\nIdle memory after ready + ${IDLE_MS / 1000} s idle, ${REPS} fresh starts (MiB; Node ${process.version})\n`);
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(' / ');
  printTable(
    Object.entries(perService).map(([name, s]) => ({
      service: name,
      'VmRSS mean': s.rssMeanMiB,
      'VmRSS per run': fmt(s.rssMiB),
      'spread': s.rssMaxMiB - s.rssMinMiB,
      '/metrics RSS mean': s.metricsRssMeanMiB,
      '/metrics per run': fmt(s.metricsRssMiB),
      'VmHWM mean': s.peakRssMeanMiB,
      'V8 heap used': s.heapUsedMeanMiB,
      'external per run': fmt(s.externalMiB),
      threads: s.threads.join('/'),
      'esbuild child': fmt(s.childRssMiB),
    })),
  );
  console.log(`\ntotal VmRSS per run: ${fmt(result.totalRssMiB as number[])} MiB`);
}
