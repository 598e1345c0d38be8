/** Where services run: the {@link ServiceDiscovery} port and its configuration-based implementation. */
export type { ServiceDiscovery } from './service-discovery.ts';
export { ServiceNotFoundError } from './service-not-found-error.ts';
export { StaticDiscovery, parseBaseUrls, serviceUrlVariable, type StaticDiscoveryOptions } from './static-discovery.ts';
