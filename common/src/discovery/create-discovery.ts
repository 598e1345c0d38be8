import type { BaseEnv } from '../config/index.ts';
import type { Logger } from '../logging/index.ts';
import { ConsulClient } from './consul-client.ts';
import { ConsulDiscovery } from './consul-discovery.ts';
import type { ServiceDiscovery } from './service-discovery.ts';
import { StaticDiscovery } from './static-discovery.ts';

/** The variables {@link createServiceDiscovery} reads (part of `baseEnv`). */
export type DiscoveryEnv = Pick<BaseEnv, 'DISCOVERY' | 'CONSUL_HTTP_ADDR' | 'CONSUL_HTTP_TOKEN'>;

/**
 * The discovery `DISCOVERY` selects: {@link StaticDiscovery} (the `<NAME>_URL` variables of
 * `process.env`, else the default ports) or {@link ConsulDiscovery} on `CONSUL_HTTP_ADDR`, watching
 * `services` from the start.
 */
export function createServiceDiscovery(config: DiscoveryEnv, options: { services?: readonly string[]; logger?: Logger } = {}): ServiceDiscovery {
  if (config.DISCOVERY === 'static') return new StaticDiscovery();
  const client = new ConsulClient({ address: config.CONSUL_HTTP_ADDR, token: config.CONSUL_HTTP_TOKEN });
  return new ConsulDiscovery({ client, ...(options.services ? { services: options.services } : {}), ...(options.logger ? { logger: options.logger } : {}) });
}
