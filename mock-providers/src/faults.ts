import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { seededRandom } from './seeded-random.ts';

/** The faults a provider injects into its API calls (`PUT /_admin/faults` body; omitted fields take their defaults). */
export const FaultSettings = z.object({
  failNext: z.number().int().min(0).max(1_000_000).default(0).describe('the next N calls fail, then calls succeed again'),
  failureRate: z.number().min(0).max(1).default(0).describe('share of calls (after failNext) that fail, drawn from the seeded PRNG'),
  latencyMs: z.number().int().min(0).max(30_000).default(0).describe('delay before every call is answered'),
  failureStatus: z.union([z.literal(500), z.literal(503)]).default(503).describe('status of an injected failure'),
});
export type FaultSettings = z.output<typeof FaultSettings>;

/** No faults: every call answers at once. */
export const NO_FAULTS: FaultSettings = Object.freeze({ failNext: 0, failureRate: 0, latencyMs: 0, failureStatus: 503 });

/** What the injector decided for one call. */
export type FaultDecision = { fail: false } | { fail: true; status: 500 | 503; cause: 'fail_next' | 'failure_rate' };

/**
 * Latency and failures for one provider. A failure is decided BEFORE the call has any effect, so a
 * client retrying with the same idempotency key still gets exactly one charge or message.
 * Setting or resetting the faults restarts the random sequence from the seed.
 */
export class FaultInjector {
  private settings: FaultSettings;
  private random: () => number;

  constructor(
    private readonly seed: number,
    initial: FaultSettings = NO_FAULTS,
  ) {
    this.settings = { ...initial };
    this.random = seededRandom(seed);
  }

  /** The current settings (with `failNext` counting down as failures happen). */
  current(): FaultSettings {
    return { ...this.settings };
  }

  /** Replaces the settings and restarts the random sequence. */
  set(settings: FaultSettings): void {
    this.settings = { ...settings };
    this.random = seededRandom(this.seed);
  }

  /** Back to {@link NO_FAULTS}, random sequence restarted. */
  reset(): void {
    this.set(NO_FAULTS);
  }

  /** Waits the configured latency, then decides whether this call fails. */
  async beforeCall(): Promise<FaultDecision> {
    if (this.settings.latencyMs > 0) await sleep(this.settings.latencyMs);
    const { failNext, failureRate, failureStatus } = this.settings;
    if (failNext > 0) {
      this.settings.failNext = failNext - 1;
      return { fail: true, status: failureStatus, cause: 'fail_next' };
    }
    if (failureRate > 0 && this.random() < failureRate) return { fail: true, status: failureStatus, cause: 'failure_rate' };
    return { fail: false };
  }
}
