import { StaticDiscovery } from '@civildiy/common/discovery';
import { defineService } from '@civildiy/common/runtime';
import { buildApp } from './app.ts';
import { gatewayEnv } from './config.ts';
import { buildOpsApp } from './ops-app.ts';
import { connected, createRateLimitRedis } from './rate-limits.ts';

/** The single entry point: routing, JWT check, verified `X-User-ID`, rate limits, merged `/docs`. */
export const gatewayService = defineService({
  name: 'gateway',
  env: gatewayEnv,
  build: async ({ config, logger }) => {
    // Reads <NAME>_URL (validated by gatewayEnv) and the services' port variables from the environment.
    const discovery = new StaticDiscovery();
    const rateLimitRedis = createRateLimitRedis(config.REDIS_BROKER_URL, logger);
    await connected(rateLimitRedis, 5_000);
    const app = await buildApp({ config, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, discovery, rateLimitRedis });
    return {
      background: { discovery, 'rate-limit redis': { close: () => rateLimitRedis.quit() } },
      // The operations port listens first and so closes last: the last scrape sees the whole drain.
      http: [...(config.GATEWAY_OPS_PORT !== 0 ? [{ app: buildOpsApp({ logger }), port: config.GATEWAY_OPS_PORT }] : []), { app, port: config.GATEWAY_PORT }],
    };
  },
});
