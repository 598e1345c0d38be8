/**
 * `npm run bench`: runs every benchmark in turn (or those named: `npm run bench -- tasks memory`) and
 * prints their figures, then writes them to `.data/bench-<time>.json`. The machine should be
 * otherwise idle; figures vary by a few percent between runs, so each benchmark repeats its
 * measurements and reports the spread.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { calibrate } from './calibration.ts';

/**
 * A benchmark module: `run()` measures and returns the figures (written to the JSON file),
 * `printReport()` prints them. feed and search print their tables as they go, inside `run()`.
 */
interface Benchmark<Result> {
  run(): Promise<Result>;
  printReport?(result: Result): void;
}

/** Loads the module, runs it and prints its report: every entry the same way. */
function benchmark<Result>(load: () => Promise<Benchmark<Result>>): () => Promise<Result> {
  return async () => {
    const { run, printReport } = await load();
    const result = await run();
    printReport?.(result);
    return result;
  };
}

const benchmarks: Record<string, () => Promise<unknown>> = {
  tasks: benchmark(() => import('./tasks.ts')),
  'order-flow': benchmark(() => import('./order-flow.ts')),
  feed: benchmark(() => import('./feed.ts')),
  search: benchmark(() => import('./search.ts')),
  'search-model': benchmark(() => import('./search-model.ts')),
  memory: benchmark(() => import('./memory.ts')),
  events: benchmark(() => import('./events.ts')),
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in benchmarks));
if (unknown.length > 0) {
  console.error(`Unknown benchmark(s): ${unknown.join(', ')}. Known: ${Object.keys(benchmarks).join(', ')}`);
  process.exit(2);
}
const selected = wanted.length > 0 ? wanted : Object.keys(benchmarks);
calibrate(); // the first run of a process also pays for loading and compiling
const calibrationBefore = calibrate();
console.log(`machine calibration: ${calibrationBefore} ms (a fixed CPU workload; lower is faster, compare runs by it)`);
const machine: Record<string, unknown> = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, calibrationMs: { before: calibrationBefore } };
const results: Record<string, unknown> = { machine, startedAt: new Date().toISOString() };
for (const name of selected) {
  console.log(`\n=== ${name}`);
  const started = performance.now();
  results[name] = await benchmarks[name]!();
  console.log(`=== ${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
const calibrationAfter = calibrate();
machine.calibrationMs = { before: calibrationBefore, after: calibrationAfter };
console.log(`\nmachine calibration: ${calibrationBefore} ms before, ${calibrationAfter} ms after`);
const folder = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.data');
mkdirSync(folder, { recursive: true });
const file = path.join(folder, `bench-${Date.now()}.json`);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nFigures written to ${file}`);
process.exit(0);
