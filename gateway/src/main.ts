import { loadConfigOrExit } from '@civildiy/common';
import { StaticDiscovery } from '@civildiy/common/discovery';
import { startRuntime } from '@civildiy/common/runtime';
import { listen } from '@civildiy/common/service';
import { buildApp } from './app.ts';
import { gatewayEnv } from './config.ts';
import { buildOpsApp } from './ops-app.ts';
import { connected, createRateLimitRedis } from './rate-limits.ts';

const config = loadConfigOrExit(gatewayEnv);
const { logger, shutdown } = await startRuntime({ service: 'gateway', config });

// Reads <NAME>_URL (validated above by gatewayEnv) and the services' port variables from the environment.
const discovery = new StaticDiscovery();
shutdown.add('discovery', () => discovery.close());
const rateLimitRedis = createRateLimitRedis(config.REDIS_BROKER_URL, logger);
shutdown.add('rate-limit redis', () => rateLimitRedis.quit());
await connected(rateLimitRedis, 5_000);

const app = await buildApp({ config, logger, auth: { jwksUrl: config.AUTH_JWKS_URL }, discovery, rateLimitRedis });
// Listening before the public port, it closes after it: the last scrape sees the whole drain.
if (config.GATEWAY_OPS_PORT !== 0) await listen(buildOpsApp({ logger }), { port: config.GATEWAY_OPS_PORT, host: config.HOST, shutdown });
await listen(app, { port: config.GATEWAY_PORT, host: config.HOST, shutdown });
