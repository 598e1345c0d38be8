import { createLogger, loadConfig } from '@civildiy/common';
import { ServiceNotFoundError, StaticDiscovery, type ServiceDiscovery } from '@civildiy/common/discovery';
import type { App, KeySource } from '@civildiy/common/service';
import { REDIS_URL, freePort, removeRedisPrefix, uniquePrefix } from '@civildiy/common/testing';
import { buildApp } from '../src/app.ts';
import { ROUTED_SERVICES, gatewayEnv } from '../src/config.ts';
import { buildOpsApp } from '../src/ops-app.ts';
import { connected, createRateLimitRedis } from '../src/rate-limits.ts';

/**
 * A gateway listening on a free port, with a static discovery and its own Redis key prefix, and its
 * operations app (metrics) on another.
 */
export interface GatewayUnderTest {
  url: string;
  /** The operations listener (`GATEWAY_OPS_PORT`). */
  opsUrl: string;
  app: App;
  prefix: string;
  close(): Promise<void>;
}

async function listenLocally(app: App): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}`;
}

/** A URL where nothing listens (a port the OS just handed out and took back). */
export async function deadUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

/** A discovery that knows nothing of some services (as Consul would with no healthy instance). */
class WithoutServices implements ServiceDiscovery {
  constructor(
    private readonly inner: ServiceDiscovery,
    private readonly missing: ReadonlySet<string>,
  ) {}

  resolve(service: string): Promise<string> {
    if (this.missing.has(service)) return Promise.reject(new ServiceNotFoundError(service, `No URL is configured for ${service}`));
    return this.inner.resolve(service);
  }

  async instances(service: string): Promise<string[]> {
    return this.missing.has(service) ? [] : this.inner.instances(service);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Builds and starts the gateway in this process. `urls` maps service names to base URLs; every other
 * routed service gets a URL where nothing listens, so a test never reaches a real service on this
 * machine, except those in `unconfigured`, which discovery does not find at all. Budgets are
 * unlimited unless `env` sets them.
 */
export async function startGateway(options: {
  auth: KeySource;
  urls: Record<string, string>;
  /** Services discovery has no instance of. */
  unconfigured?: readonly string[];
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
    urls[service] = options.urls[service] ?? (await deadUrl());
  }
  const discovery = new WithoutServices(new StaticDiscovery({ urls, env: {} }), new Set(options.unconfigured ?? []));
  const rateLimitRedis = createRateLimitRedis(options.redisUrl ?? REDIS_URL, logger);
  if (!options.redisUrl) await connected(rateLimitRedis, 5_000);
  const app = await buildApp({ config, logger, auth: options.auth, discovery, rateLimitRedis });
  const ops = buildOpsApp({ logger });
  return {
    url: await listenLocally(app),
    opsUrl: await listenLocally(ops),
    app,
    prefix,
    close: async () => {
      await Promise.all([app.close(), ops.close()]);
      rateLimitRedis.disconnect();
      await removeRedisPrefix(prefix);
    },
  };
}
