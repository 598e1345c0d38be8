import { createLogger, loadConfig } from '@civildiy/common';
import { StaticDiscovery } from '@civildiy/common/discovery';
import type { App, KeySource } from '@civildiy/common/service';
import { PLANNED_SERVICES } from '@civildiy/common/topology';
import { REDIS_URL, freePort, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import { ROUTED_SERVICES, gatewayEnv } from '../src/config.ts';
import { connected, createRateLimitRedis } from '../src/rate-limits.ts';

/** A gateway app listening on a free port, with a static discovery and its own Redis key prefix. */
export interface GatewayUnderTest {
  url: string;
  app: App;
  prefix: string;
  close(): Promise<void>;
}

/** A URL where nothing listens (a port the OS just handed out and took back). */
export async function deadUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

/**
 * Builds and starts the gateway in this process. `urls` maps service names to base URLs; every other
 * routed service gets a URL where nothing listens, so a test never reaches a real service on this
 * machine (planned services stay unconfigured). Budgets are unlimited unless `env` sets them.
 */
export async function startGateway(options: {
  auth: KeySource;
  urls: Record<string, string>;
  env?: Record<string, string>;
  /** Default: the test Redis. */
  redisUrl?: string;
}): Promise<GatewayUnderTest> {
  const prefix = uniquePrefix('gateway');
  const config = loadConfig(gatewayEnv, {
    REDIS_KEY_PREFIX: prefix,
    GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '0',
    GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '0',
    GATEWAY_RATE_LIMIT_ROUTE_FACTOR: '0',
    GATEWAY_HEALTH_TIMEOUT_MS: '1000',
    ...options.env,
  });
  const logger = createLogger({ service: 'gateway', level: 'silent' });
  const urls: Record<string, string> = {};
  for (const service of ROUTED_SERVICES) {
    const url = options.urls[service] ?? (PLANNED_SERVICES.includes(service) ? undefined : await deadUrl());
    if (url) urls[service] = url;
  }
  const discovery = new StaticDiscovery({ urls, env: {} });
  const rateLimitRedis = createRateLimitRedis(options.redisUrl ?? REDIS_URL, logger);
  if (!options.redisUrl) await connected(rateLimitRedis, 5_000);
  const app = await buildApp({ config, logger, auth: options.auth, discovery, rateLimitRedis });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('gateway has no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    app,
    prefix,
    close: async () => {
      await app.close();
      rateLimitRedis.disconnect();
      await removeRedisPrefix(prefix);
    },
  };
}
