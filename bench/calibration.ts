/**
 * A fixed single-threaded CPU workload, timed before and after the benchmarks, so figures from
 * different runs (or a machine whose speed drifts, as shared virtual machines do) can be compared:
 * a run whose calibration took 30% longer ran on a machine about 30% slower. Hashing (native code)
 * and JSON (JavaScript) in equal parts.
 */
import { createHash } from 'node:crypto';

const DATA = Buffer.alloc(8 * 2 ** 20, 7);
const DOCUMENTS = Array.from({ length: 2_000 }, (_, index) => ({ id: index, title: `post ${index}`, tags: ['wood', 'glue'], score: index / 3 }));

function workload(): void {
  for (let round = 0; round < 4; round++) createHash('sha256').update(DATA).digest();
  for (let round = 0; round < 20; round++) JSON.parse(JSON.stringify(DOCUMENTS));
}

/** The median time of the workload over `runs` runs, in ms. */
export function calibrate(runs = 9): number {
  for (let warm = 0; warm < 3; warm++) workload();
  const times = Array.from({ length: runs }, () => {
    const started = performance.now();
    workload();
    return performance.now() - started;
  }).sort((a, b) => a - b);
  return Number(times[Math.floor(runs / 2)]!.toFixed(1));
}
