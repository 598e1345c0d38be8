/**
 * How long a job should wait before it runs again when its handler failed with `error` through no
 * fault of the job — its `deferMs`, a positive number of milliseconds — or `undefined` for an
 * ordinary failure. The task runtime moves such a job back to the delayed set for that long without
 * counting the attempt (BullMQ `moveToDelayed` + `DelayedError`), so an outage that a circuit
 * breaker already knows about (`ProviderUnavailableError` `provider.circuit_open`) makes jobs wait
 * instead of using up their attempts. A call that really reached a failing provider still counts.
 */
export function deferralOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const deferMs = (error as { deferMs?: unknown }).deferMs;
  return typeof deferMs === 'number' && Number.isFinite(deferMs) && deferMs > 0 ? deferMs : undefined;
}
