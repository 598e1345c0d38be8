import { ConsulClient, createServiceDiscovery } from '@civildiy/common/discovery';
import { defineService, type Closable } from '@civildiy/common/runtime';
import { buildApp } from './app.ts';
import { ROUTED_SERVICES, gatewayEnv } from './config.ts';
import { buildOpsApp } from './ops-app.ts';
import { connected, createRateLimitRedis } from './rate-limits.ts';
import { RouteTablePublisher } from './route-table-publisher.ts';

/** The single entry point: routing, JWT check, verified `X-User-ID`, rate limits, merged `/docs`. */
export const gatewayService = defineService({
  name: 'gateway',
  env: gatewayEnv,
  build: async ({ config, logger }) => {
    // DISCOVERY=static reads <NAME>_URL (validated by gatewayEnv) and the services' port variables from
    // the environment; DISCOVERY=consul watches the healthy instances of every routed service in Consul.
    const discovery = createServiceDiscovery(config, { services: ROUTED_SERVICES, logger });
    const rateLimitRedis = createRateLimitRedis(config.REDIS_BROKER_URL, logger);
    await connected(rateLimitRedis, 5_000);
    const app = await buildApp({ config, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, discovery, rateLimitRedis });
    // With Consul, the route table also goes to its KV store, in Traefik's layout.
    const routeTable: Record<string, Closable> =
      config.DISCOVERY === 'consul' ? { 'route table publisher': new RouteTablePublisher({ client: new ConsulClient({ address: config.CONSUL_HTTP_ADDR, token: config.CONSUL_HTTP_TOKEN }), logger }) } : {};
    return {
      background: { discovery, 'rate-limit redis': { close: () => rateLimitRedis.quit() }, ...routeTable },
      // The operations port listens first and so closes last: the last scrape sees the whole drain.
      http: [...(config.GATEWAY_OPS_PORT !== 0 ? [{ app: buildOpsApp({ logger }), port: config.GATEWAY_OPS_PORT }] : []), { app, port: config.GATEWAY_PORT }],
    };
  },
});
