import { SERVICES } from '../topology/index.ts';
import type { ServiceDiscovery } from './service-discovery.ts';
import { ServiceNotFoundError } from './service-not-found-error.ts';

/**
 * The environment variable holding a service's base URL(s): its port variable with `_PORT` replaced
 * by `_URL` (`AUTH_PORT` → `AUTH_URL`), or, for a service not in `SERVICES`, its name without
 * `-service`, upper-cased (`search-service` → `SEARCH_URL`).
 */
export function serviceUrlVariable(service: string): string {
  const known = SERVICES.find((s) => s.name === service);
  if (known) return known.portVariable.replace(/_PORT$/, '_URL');
  return `${service.replace(/-service$/, '').replace(/-/g, '_').toUpperCase()}_URL`;
}

/**
 * Parses a comma-separated list of `http(s)://host[:port]` base URLs (a path is not allowed; a
 * trailing slash is dropped).
 * @throws Error naming the bad entry.
 */
export function parseBaseUrls(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => {
      let url: URL;
      try {
        url = new URL(item);
      } catch {
        throw new Error(`"${item}" is not a URL`);
      }
      if ((url.protocol !== 'http:' && url.protocol !== 'https:') || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
        throw new Error(`"${item}" is not an http(s)://host:port base URL`);
      }
      return url.origin;
    });
}

/** Options of {@link StaticDiscovery}. */
export interface StaticDiscoveryOptions {
  /** Base URLs by service name; they win over the environment. Several URLs = several instances. */
  urls?: Record<string, string | readonly string[]>;
  /**
   * Where `<NAME>_URL` (see {@link serviceUrlVariable}, a comma-separated list for several instances)
   * and the services' port variables are read. Default: `process.env`.
   */
  env?: Readonly<Record<string, unknown>>;
}

/**
 * Discovery from configuration, for one machine and tests. A service's instances are, in order of
 * precedence: `options.urls[service]`; the `<NAME>_URL` variable; `http://127.0.0.1:<port>` where the
 * port is its port variable (e.g. `AUTH_PORT`) or its default port from `SERVICES`. A service with
 * none of these (one of `PLANNED_SERVICES`, say) is not found. Instances are taken round-robin.
 */
export class StaticDiscovery implements ServiceDiscovery {
  private readonly urls = new Map<string, string[]>();
  private readonly next = new Map<string, number>();
  private readonly env: Readonly<Record<string, unknown>>;

  /** @throws Error when a configured URL is malformed (naming its variable). */
  constructor(options: StaticDiscoveryOptions = {}) {
    this.env = options.env ?? process.env;
    for (const [service, value] of Object.entries(options.urls ?? {})) {
      this.urls.set(service, parseBaseUrls(typeof value === 'string' ? value : value.join(',')));
    }
    for (const service of SERVICES) this.load(service.name);
  }

  /** {@inheritDoc ServiceDiscovery.resolve} */
  async resolve(service: string): Promise<string> {
    const urls = this.load(service);
    if (urls.length === 0) throw new ServiceNotFoundError(service, `No URL is configured for ${service} (set ${serviceUrlVariable(service)})`);
    if (urls.length === 1) return urls[0]!;
    const index = this.next.get(service) ?? 0;
    this.next.set(service, (index + 1) % urls.length);
    return urls[index]!;
  }

  /** {@inheritDoc ServiceDiscovery.instances} */
  async instances(service: string): Promise<string[]> {
    return [...this.load(service)];
  }

  /** Nothing runs in the background. */
  async close(): Promise<void> {}

  private load(service: string): string[] {
    const cached = this.urls.get(service);
    if (cached) return cached;
    const variable = serviceUrlVariable(service);
    const configured = this.env[variable];
    let urls: string[];
    if (typeof configured === 'string' && configured.trim() !== '') {
      try {
        urls = parseBaseUrls(configured);
      } catch (error) {
        throw new Error(`${variable}: ${error instanceof Error ? error.message : String(error)}`);
      }
    } else {
      const known = SERVICES.find((s) => s.name === service);
      const portSetting = known ? this.env[known.portVariable] : undefined;
      const port = (typeof portSetting === 'string' || typeof portSetting === 'number') && String(portSetting).trim() !== '' ? String(portSetting).trim() : known?.ports[0];
      urls = port === undefined ? [] : [`http://127.0.0.1:${String(port)}`];
    }
    this.urls.set(service, urls);
    return urls;
  }
}
