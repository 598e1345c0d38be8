import type { z } from 'zod';
import { baseEnv, envInt } from '@civildiy/common';

/** dashboard environment (see .env.example). The ops CLI reads the same variables. */
export const dashboardEnv = baseEnv.extend({
  DASHBOARD_PORT: envInt(0, 65535).default(3000).describe('the HTTP port of the dashboard (its page and its API under /admin)'),
  DASHBOARD_REFRESH_MS: envInt(250, 60_000)
    .default(2_000)
    .describe("how often the dashboard probes every service's health and metrics and reads the queues and streams (ms)"),
  DASHBOARD_PROBE_TIMEOUT_MS: envInt(100, 30_000)
    .default(1_500)
    .describe('how long one probe of a service (liveness, readiness or metrics) may take before the service counts as not answering (ms)'),
  DASHBOARD_HISTORY_STEP_SECONDS: envInt(1, 300)
    .default(10)
    .describe('seconds between two points of the charts; one hour of points is kept in Redis'),
  // The gateway serves its metrics on its operations port only; the dashboard scrapes them there
  // (same host as the gateway's instance). Same variable and default as the gateway's.
  GATEWAY_OPS_PORT: envInt(0, 65535)
    .default(8009)
    .describe("the gateway's operations port (on HOST): GET /metrics and GET /health/live, for operators and Prometheus only, never to be exposed publicly; 0 = none"),
});
export type DashboardConfig = z.infer<typeof dashboardEnv>;
