// The charted series, in a module of their own without zod: the page imports the list itself
// (dashboard/web), the contract (contract.ts) builds its schemas from it.

/**
 * The charted series. Per-minute counts are over the last minute; latencies in milliseconds (of the
 * last minute's events); `search.*` are rows now; `providers.open_circuits` the circuit breakers open
 * now (in every process calling a provider).
 */
export const SERIES = [
  'orders.placed',
  'orders.confirmed',
  'orders.rejected',
  'feed.latency.p50',
  'feed.latency.p99',
  'search.backlog',
  'search.failed',
  'providers.calls',
  'providers.failures',
  'providers.open_circuits',
  'gateway.4xx',
  'gateway.5xx',
] as const;
