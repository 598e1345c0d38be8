/**
 * Finds where services run. The gateway asks it for every request, so an implementation answers from
 * memory and keeps itself current in the background (Consul: blocking queries on the health API),
 * rather than calling out per `resolve`.
 */
export interface ServiceDiscovery {
  /**
   * The base URL (`http://host:port`, no trailing slash) of one instance of `service`. With several
   * instances, successive calls spread over them.
   * @throws ServiceNotFoundError when no instance of `service` is known.
   */
  resolve(service: string): Promise<string>;
  /** The base URLs of every known instance of `service`; empty when there is none. */
  instances(service: string): Promise<string[]>;
  /** Stops background work (watches, connections). Idempotent. */
  close(): Promise<void>;
}
