/** Settings of {@link AdaptiveLimit}. */
export interface AdaptiveLimitOptions {
  /** The limit to start from. */
  initial: number;
  /** It never goes below this. */
  min: number;
  /** Nor above this. */
  max: number;
  /** A request slower than this (from admission to its end) counts as a sign of congestion, in ms. */
  latencyTargetMs: number;
}

/**
 * A concurrency limit that follows what the upstream can take, additive increase / multiplicative
 * decrease as TCP does: every request that ends well within `latencyTargetMs` while the limit was in
 * use adds 1/limit (about +1 per round of requests); a request slower than the target, or failed
 * for load (503, time-out, connection failure), takes a quarter off, at most once per round trip
 * (the requests of one congested moment count once).
 *
 * Why: a fixed limit of, say, 128 requests to a saturated service either waits at the service
 * (latency grows to the deadline) or opens connections that a service whose event loop is busy
 * accepts one per loop turn (measured: ~3 a second at 300 ms turns), so requests sat 10 s on new
 * connections. Following latency keeps the requests in flight near what the service finishes in time.
 */
export class AdaptiveLimit {
  private value: number;
  private lastDecreaseAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: AdaptiveLimitOptions) {
    this.value = Math.min(options.max, Math.max(options.min, options.initial));
  }

  /** The number of requests that may run now. */
  get current(): number {
    return Math.floor(this.value);
  }

  /**
   * One request ended after `latencyMs`; `overloaded` when it failed for load. `inFlight`: requests
   * running when it ended (the limit grows only while it is actually used).
   */
  record(latencyMs: number, overloaded: boolean, inFlight: number, now = performance.now()): void {
    if (overloaded || latencyMs > this.options.latencyTargetMs) {
      if (now - this.lastDecreaseAt < latencyMs) return;
      this.lastDecreaseAt = now;
      this.value = Math.max(this.options.min, this.value * 0.75);
      return;
    }
    if (inFlight + 1 >= this.current) this.value = Math.min(this.options.max, this.value + 1 / this.value);
  }
}
