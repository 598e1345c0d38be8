import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StaticDiscovery } from '@civildiy/common/discovery';
import { defineService } from '@civildiy/common/runtime';
import { httpSettings } from '@civildiy/common/service';
import { SERVICES } from '@civildiy/common/topology';
import { dashboardEnv } from './config.ts';
import { assembleDashboard } from './dashboard-assembly.ts';

/** The built web page: `dashboard/dist/web` from the sources (src/) and from the compiled code (dist/) alike. */
const WEB_ROOT = fileURLToPath(new URL('../dist/web', import.meta.url));

/** The operators' dashboard: services, queues, streams, dead letters and charts, live; sign-in through auth-service. */
export const dashboardService = defineService({
  name: 'dashboard',
  env: dashboardEnv,
  build: async ({ config, logger, redis, tasks, events, readiness }) => {
    // Reads <NAME>_URL and the services' port variables from the environment, as the gateway does.
    const discovery = new StaticDiscovery();
    const { app, monitor } = await assembleDashboard({
      logger,
      redis,
      prefix: config.REDIS_KEY_PREFIX,
      tasks,
      events: events.admin,
      transport: config.EVENT_BUS,
      services: SERVICES,
      discovery,
      auth: { jwksUrl: config.AUTH_JWKS_URL },
      readiness,
      refreshMs: config.DASHBOARD_REFRESH_MS,
      probeTimeoutMs: config.DASHBOARD_PROBE_TIMEOUT_MS,
      stepSeconds: config.DASHBOARD_HISTORY_STEP_SECONDS,
      gatewayOpsPort: config.GATEWAY_OPS_PORT,
      http: httpSettings(config),
      webRoot: existsSync(WEB_ROOT) ? WEB_ROOT : undefined,
    });
    monitor.start();
    return {
      background: { discovery, 'dashboard monitor': { close: () => monitor.close() } },
      http: [{ app, port: config.DASHBOARD_PORT }],
    };
  },
});
