/** Reading processes' memory from /proc (Linux), for the memory and search-model benchmarks. */
import { readdir, readFile } from 'node:fs/promises';

/** Children of `pid` (every thread's `children` file). */
export async function childrenOf(pid: number): Promise<number[]> {
  const threads = await readdir(`/proc/${pid}/task`).catch(() => []);
  const lists = await Promise.all(threads.map((tid) => readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '')));
  return lists.flatMap((list) => list.split(' ').filter(Boolean).map(Number));
}

/** Rss, Pss and Pss_Anon of a process (kB), or undefined when it has exited. */
export async function smapsRollup(pid: number): Promise<{ rss: number; pss: number; pssAnon: number } | undefined> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const kB = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rss: kB('Rss'), pss: kB('Pss'), pssAnon: kB('Pss_Anon') };
}

/** RSS and PSS (MiB) of `pid` and every process below it, and how many processes that is. */
export async function treeMemory(pid: number): Promise<{ processes: number; rssMiB: number; pssMiB: number }> {
  let processes = 0;
  let rss = 0;
  let pss = 0;
  const visit = async (current: number): Promise<void> => {
    const kB = await smapsRollup(current);
    if (!kB) return;
    processes += 1;
    rss += kB.rss;
    pss += kB.pss;
    for (const child of await childrenOf(current)) await visit(child);
  };
  await visit(pid);
  return { processes, rssMiB: Math.round(rss / 1024), pssMiB: Math.round(pss / 1024) };
}
