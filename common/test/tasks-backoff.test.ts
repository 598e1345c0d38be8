import { describe, expect, it } from 'vitest';
import { computeBackoffMs, type BackoffPolicy } from '../src/tasks/index.ts';

const exponential: BackoffPolicy = { type: 'exponential', delayMs: 100, maxDelayMs: 5_000, jitter: 0.5 };

describe('computeBackoffMs', () => {
  it('doubles the delay with every failed attempt, up to maxDelayMs, without jitter', () => {
    const policy = { ...exponential, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => computeBackoffMs(policy, n))).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  });

  it('keeps a fixed delay fixed', () => {
    const policy: BackoffPolicy = { type: 'fixed', delayMs: 250, maxDelayMs: 60_000, jitter: 0 };
    expect([1, 2, 10].map((n) => computeBackoffMs(policy, n))).toEqual([250, 250, 250]);
  });

  it('draws every jittered delay within [d·(1−jitter), d] and covers the range', () => {
    for (const jitter of [0.1, 0.5, 1]) {
      for (const attempt of [1, 2, 3, 7, 40]) {
        const d = Math.min(exponential.maxDelayMs, exponential.delayMs * 2 ** (attempt - 1));
        const draws = Array.from({ length: 5_000 }, () => computeBackoffMs({ ...exponential, jitter }, attempt));
        const low = Math.min(...draws);
        const high = Math.max(...draws);
        expect(low).toBeGreaterThanOrEqual(Math.ceil(d * (1 - jitter)));
        expect(high).toBeLessThanOrEqual(d);
        // 5,000 uniform draws reach close to both ends of the interval.
        expect(low - d * (1 - jitter)).toBeLessThan(d * jitter * 0.01 + 1);
        expect(d - high).toBeLessThan(d * jitter * 0.01 + 1);
        expect(draws.every(Number.isInteger)).toBe(true);
      }
    }
  });

  it('maps the ends of the random source to the ends of the interval', () => {
    expect(computeBackoffMs(exponential, 3, () => 0)).toBe(400);
    expect(computeBackoffMs(exponential, 3, () => 0.999_999)).toBe(200);
    expect(computeBackoffMs(exponential, 3, () => 0.5)).toBe(300);
  });

  it('survives absurd attempt counts (no overflow past maxDelayMs)', () => {
    expect(computeBackoffMs({ ...exponential, jitter: 0 }, 10_000)).toBe(5_000);
    expect(computeBackoffMs({ ...exponential, jitter: 0 }, 0)).toBe(100);
  });
});
