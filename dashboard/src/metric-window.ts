import type { Sample } from './metrics-scrape.ts';

/** Which samples a question is about: a metric name and labels that must match (absent = any value). */
export interface SampleQuery {
  name: string;
  /** Per label: the value, one of several values, or a pattern the value must match. */
  labels?: Readonly<Record<string, string | readonly string[] | RegExp>>;
}

interface Snapshot {
  at: number;
  /** The process's start time, to tell a restart (counters start again at 0) from a counter going down. */
  startTime: number | undefined;
  byName: Map<string, Sample[]>;
}

/** Options of {@link MetricWindow}. */
export interface MetricWindowOptions {
  /** How far back snapshots are kept (ms). Default 16 minutes (the longest window asked is 15). */
  keepMs?: number;
  /** Least time between two kept snapshots (ms); a newer scrape replaces the newest one until then. Default 10 s. */
  spacingMs?: number;
  /** An instance whose newest snapshot is older than this is left out of `latest` (ms). Default 30 s. */
  staleMs?: number;
}

/**
 * The services' metrics over the last minutes, per instance: what the queue rates, task timings,
 * delivery rates and the charts are computed from. Counters become increases over a window (a
 * process restart counts from 0 again, as Prometheus' `increase` does), gauges are read from each
 * instance's newest scrape, histograms become quantiles of the window's observations.
 */
export class MetricWindow {
  private readonly instances = new Map<string, Snapshot[]>();
  private readonly keepMs: number;
  private readonly spacingMs: number;
  private readonly staleMs: number;

  constructor(options: MetricWindowOptions = {}) {
    this.keepMs = options.keepMs ?? 16 * 60_000;
    this.spacingMs = options.spacingMs ?? 10_000;
    this.staleMs = options.staleMs ?? 30_000;
  }

  /** Adds one scrape of `instance` (a service and URL) taken at `at`. */
  record(instance: string, samples: readonly Sample[], at = Date.now()): void {
    const byName = new Map<string, Sample[]>();
    for (const sample of samples) {
      const list = byName.get(sample.name);
      if (list) list.push(sample);
      else byName.set(sample.name, [sample]);
    }
    const snapshot: Snapshot = { at, startTime: byName.get('process_start_time_seconds')?.[0]?.value, byName };
    const snapshots = this.instances.get(instance) ?? [];
    const previous = snapshots.at(-2);
    // Keep the newest snapshot current without keeping one per scrape.
    if (snapshots.length >= 2 && previous !== undefined && at - previous.at < this.spacingMs) snapshots[snapshots.length - 1] = snapshot;
    else snapshots.push(snapshot);
    while (snapshots.length > 0 && snapshots[0]!.at < at - this.keepMs) snapshots.shift();
    this.instances.set(instance, snapshots);
    for (const [name, kept] of this.instances) if (kept.length === 0 || kept.at(-1)!.at < at - this.keepMs) this.instances.delete(name);
  }

  /** The matching samples of every instance's newest scrape (instances not scraped lately are left out). */
  latest(query: SampleQuery, now = Date.now()): Sample[] {
    const found: Sample[] = [];
    for (const snapshots of this.instances.values()) {
      const newest = snapshots.at(-1)!;
      if (newest.at < now - this.staleMs) continue;
      found.push(...matching(newest, query));
    }
    return found;
  }

  /**
   * How much the matching counters grew per minute over the last `windowMs` (or since the first scrape,
   * when that is more recent), summed over instances; `null` when no instance has two scrapes to compare.
   */
  perMinute(query: SampleQuery, windowMs: number, now = Date.now()): number | null {
    let total: number | null = null;
    for (const snapshots of this.instances.values()) {
      const pair = this.pair(snapshots, windowMs, now);
      if (!pair) continue;
      const grown = increase(pair.from, pair.to, query);
      total = (total ?? 0) + (grown * 60_000) / (pair.to.at - pair.from.at);
    }
    return total;
  }

  /** How much the matching counters grew over the last `windowMs`, summed over instances, by the value of `label`. */
  increaseBy(query: SampleQuery, label: string, windowMs: number, now = Date.now()): Map<string, number> {
    const totals = new Map<string, number>();
    for (const snapshots of this.instances.values()) {
      const pair = this.pair(snapshots, windowMs, now);
      if (!pair) continue;
      for (const sample of matching(pair.to, query)) {
        const key = sample.labels[label] ?? '';
        totals.set(key, (totals.get(key) ?? 0) + grownBy(pair.from, pair.to, sample));
      }
    }
    return totals;
  }

  /**
   * The `q` quantile (0..1) of the observations a histogram (`<name>_bucket` series, matching labels)
   * recorded over the last `windowMs`, in the histogram's unit; `null` when it recorded none.
   */
  quantile(query: SampleQuery, q: number, windowMs: number, now = Date.now()): number | null {
    const buckets = this.increaseBy({ ...query, name: `${query.name}_bucket` }, 'le', windowMs, now);
    return histogramQuantile(q, buckets);
  }

  /** The snapshot to count from (the newest at or before the window's start, else the oldest) and the newest. */
  private pair(snapshots: readonly Snapshot[], windowMs: number, now: number): { from: Snapshot; to: Snapshot } | undefined {
    const to = snapshots.at(-1);
    if (!to || to.at < now - this.staleMs || snapshots.length < 2) return undefined;
    const start = now - windowMs;
    let from = snapshots[0]!;
    for (const snapshot of snapshots) {
      if (snapshot.at > start) break;
      from = snapshot;
    }
    return from === to ? undefined : { from, to };
  }
}

function matches(sample: Sample, query: SampleQuery): boolean {
  for (const [label, wanted] of Object.entries(query.labels ?? {})) {
    const value = sample.labels[label];
    if (value === undefined) return false;
    if (typeof wanted === 'string' ? value !== wanted : wanted instanceof RegExp ? !wanted.test(value) : !wanted.includes(value)) return false;
  }
  return true;
}

function matching(snapshot: Snapshot, query: SampleQuery): Sample[] {
  return (snapshot.byName.get(query.name) ?? []).filter((sample) => matches(sample, query));
}

function sameSeries(a: Sample, b: Sample): boolean {
  const keys = Object.keys(a.labels);
  return keys.length === Object.keys(b.labels).length && keys.every((key) => a.labels[key] === b.labels[key]);
}

/** How much one counter grew from `from` to `to` (all of it when the process restarted in between). */
function grownBy(from: Snapshot, to: Snapshot, sample: Sample): number {
  if (from.startTime !== to.startTime) return sample.value;
  const before = (from.byName.get(sample.name) ?? []).find((candidate) => sameSeries(candidate, sample));
  if (!before) return sample.value;
  return sample.value >= before.value ? sample.value - before.value : sample.value;
}

function increase(from: Snapshot, to: Snapshot, query: SampleQuery): number {
  return matching(to, query).reduce((sum, sample) => sum + grownBy(from, to, sample), 0);
}

/**
 * Prometheus' `histogram_quantile` over cumulative bucket counts by upper bound (`le`): linear
 * interpolation inside the bucket holding the rank; the highest finite bound when it falls in `+Inf`.
 */
export function histogramQuantile(q: number, buckets: ReadonlyMap<string, number>): number | null {
  const sorted = [...buckets].map(([le, count]) => ({ bound: le === '+Inf' ? Infinity : Number(le), count })).filter((b) => !Number.isNaN(b.bound));
  sorted.sort((a, b) => a.bound - b.bound);
  const total = sorted.at(-1)?.count ?? 0;
  if (total <= 0 || sorted.at(-1)!.bound !== Infinity) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const { bound, count } of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return lowerBound;
      if (count === lowerCount) return bound;
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}
