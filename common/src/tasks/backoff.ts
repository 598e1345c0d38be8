import type { TaskDefinition } from './define.ts';

/** The backoff part of a task's retry policy, with every default filled in. */
export type BackoffPolicy = TaskDefinition['retry']['backoff'];

/**
 * The delay (ms) before the next attempt after `attemptsMade` failed attempts (1 after the first
 * failure). Pure: pass `random` to make it deterministic.
 *
 * The nominal delay is `d = min(maxDelayMs, delayMs · 2^(attemptsMade−1))` for `exponential` and
 * `d = min(maxDelayMs, delayMs)` for `fixed`; the result is drawn uniformly from
 * `[d·(1−jitter), d]` and rounded to whole milliseconds inside those bounds.
 *
 * @param policy - the task's backoff policy (`definition.retry.backoff`).
 * @param attemptsMade - failed attempts so far, at least 1.
 * @param random - a source of numbers in `[0, 1)`. Default `Math.random`.
 */
export function computeBackoffMs(policy: BackoffPolicy, attemptsMade: number, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(attemptsMade));
  const base = Math.max(0, policy.delayMs);
  const cap = Math.max(0, policy.maxDelayMs);
  // 2^(n-1) overflows to Infinity for large n; min() keeps the cap.
  const nominal = Math.min(cap, policy.type === 'fixed' ? base : base * 2 ** (n - 1));
  const jitter = Math.min(1, Math.max(0, policy.jitter));
  const high = Math.floor(nominal);
  if (jitter === 0) return high;
  const low = Math.min(high, Math.ceil(nominal * (1 - jitter)));
  const drawn = Math.round(nominal * (1 - jitter * random()));
  return Math.min(high, Math.max(low, drawn));
}
