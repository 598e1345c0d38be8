/** Where services run: the {@link ServiceDiscovery} port, its configuration-based and Consul implementations, and Consul's client. */
export type { ServiceDiscovery } from './service-discovery.ts';
export { ServiceNotFoundError } from './service-not-found-error.ts';
export { StaticDiscovery, parseBaseUrls, serviceUrlVariable, type StaticDiscoveryOptions } from './static-discovery.ts';
export {
  CONSUL_MAX_TXN_OPERATIONS,
  ConsulClient,
  ConsulError,
  ConsulTransactionError,
  consulBaseUrl,
  consulDuration,
  type ConsulClientOptions,
  type ConsulErrorCode,
  type ConsulHealthAnswer,
  type ConsulHealthQuery,
  type ConsulHttpCheck,
  type ConsulKvOperation,
  type ConsulServiceInstance,
  type ConsulServiceRegistration,
} from './consul-client.ts';
export { ConsulDiscovery, instanceUrl, type ConsulDiscoveryOptions } from './consul-discovery.ts';
export { replaceKvTree, type KvTreeReplacement, type ReplaceKvTreeOptions } from './consul-kv.ts';
export { createServiceDiscovery, type DiscoveryEnv } from './create-discovery.ts';
