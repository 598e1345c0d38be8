import type {
  ForwardAuthMiddleware,
  HeadersMiddleware,
  HttpLoadBalancerService,
  HttpRouter,
  HttpsJsonSchemastoreOrgTraefikV3FileProviderJson as TraefikFileProviderSchema,
  RateLimitMiddleware,
} from '@schemastore/traefik-v3-file-provider';
import type { TraefikV3StaticConfiguration } from '@schemastore/traefik-v3';
import type { ServiceInfo } from './index.ts';
import { GATEWAY_ROUTES, routeMethods, type GatewayRoute, type RouteAccess } from './routes.ts';

/** A middleware the generator emits (each a member of the published schema's middleware union). */
export type TraefikMiddleware = { headers: HeadersMiddleware } | { forwardAuth: ForwardAuthMiddleware } | { rateLimit: RateLimitMiddleware };

/**
 * Traefik v3's dynamic configuration as {@link traefikDynamicConfig} makes it. It extends the type
 * generated from Traefik's published JSON schema (SchemaStore's `traefik-v3-file-provider`), so the
 * compiler rejects an option name or a value type that schema does not have.
 */
export interface TraefikDynamicConfig extends TraefikFileProviderSchema {
  http: {
    routers: Record<string, HttpRouter>;
    services: Record<string, { loadBalancer: HttpLoadBalancerService }>;
    middlewares: Record<string, TraefikMiddleware>;
  };
}

/** Traefik v3's static configuration, typed by SchemaStore's `traefik-v3` schema. */
export type TraefikStaticConfig = TraefikV3StaticConfiguration;

/** The headers only the edge may set: removed from every client request, then set from auth-service's answer. */
export const IDENTITY_HEADERS = ['X-User-ID', 'X-Username'] as const;

/** The middleware removing client-sent {@link IDENTITY_HEADERS} (first on every router). */
export const STRIP_IDENTITY_MIDDLEWARE = 'strip-identity';

/**
 * Router priorities start above this, so the generated routers win over any router another
 * provider may add with Traefik's default priority (the rule's length).
 */
export const ROUTER_PRIORITY_BASE = 1000;

/** Options of {@link traefikDynamicConfig}. */
export interface TraefikConfigOptions {
  /** The route table. Default {@link GATEWAY_ROUTES}. */
  routes?: readonly GatewayRoute[];
  /**
   * The base URL of a service's instances (no trailing slash), e.g. {@link composeUpstreamUrls}`(SERVICES)`
   * for Compose. An error it throws for a service it has no URL for reaches the caller.
   */
  upstreamUrl: (service: string) => string;
  /** auth-service's forward-auth endpoint, without a query. Default `<upstreamUrl('auth-service')>/auth/verify`. */
  verifyUrl?: string;
  /** The entry points every router listens on. Default `['web']` (see {@link traefikStaticConfig}). */
  entryPoints?: readonly string[];
}

/**
 * Upstream URLs as Compose names them: `http://<service>:<its first default port>` for each of
 * `services` (pass `SERVICES`); a name not among them throws.
 */
export function composeUpstreamUrls(services: readonly ServiceInfo[]): (service: string) => string {
  return (service) => {
    const info = services.find((candidate) => candidate.name === service);
    if (!info) throw new Error(`No service named ${service}: the route table names a service the topology does not list`);
    return `http://${service}:${info.ports[0]}`;
  };
}

/**
 * The router name of a route table entry: its prefix and methods in lower case (`posts-get`,
 * `auth-login-post`, `feed-rebuild`). Traefik's KV keys are case-insensitive, so names must differ
 * in more than case; {@link traefikDynamicConfig} checks that they do.
 */
export function traefikRouterName(route: GatewayRoute): string {
  const base =
    route.prefix
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'root';
  return route.methods ? `${base}-${route.methods.map((method) => method.toLowerCase()).join('-')}` : base;
}

/** Backticks end a Traefik rule value; a prefix with one cannot be written as a rule. */
function ruleValue(text: string): string {
  if (text.includes('`')) throw new Error(`A route prefix cannot hold a backtick: ${text}`);
  return `\`${text}\``;
}

/**
 * The rule of a route: its prefix on whole segments (`Path(`/x`) || PathPrefix(`/x/`)`, as the
 * gateway's `pathHasPrefix`), and, when the entry lists methods, those methods (`GET` with `HEAD`,
 * as the gateway adds it). Traefik v3 matchers take one value each, so methods are or-ed.
 */
export function traefikRule(route: GatewayRoute): string {
  const prefix = route.prefix.endsWith('/') ? route.prefix.slice(0, -1) : route.prefix;
  const path = prefix === '' ? 'PathPrefix(`/`)' : `(Path(${ruleValue(prefix)}) || PathPrefix(${ruleValue(`${prefix}/`)}))`;
  if (!route.methods) return path;
  const methods = [...routeMethods(route)].map((method) => `Method(${ruleValue(method)})`);
  return `${path} && ${methods.length === 1 ? methods[0] : `(${methods.join(' || ')})`}`;
}

function forwardAuthMiddlewareName(access: RouteAccess): string {
  return `forward-auth-${access}`;
}

/**
 * Traefik v3's dynamic configuration (the file provider's file, or the KV layout through
 * {@link traefikKvEntries}) for the gateway's route table, doing at the edge what the gateway does
 * as far as Traefik can:
 *
 * - one router per entry, its rule from {@link traefikRule}, with priorities descending in table
 *   order above {@link ROUTER_PRIORITY_BASE}, so the first entry that matches wins as at the gateway;
 * - one service per upstream (a load balancer over `upstreamUrl(service)`);
 * - on every router first {@link STRIP_IDENTITY_MIDDLEWARE} (a headers middleware whose empty values
 *   remove the client's `X-User-ID` and `X-Username`); then, for an entry with `rateLimit.perAddress`,
 *   a rate limit per client address (counted before the token check, as the gateway counts before
 *   answering a token error); then, unless the entry has `verifyToken: false`, forwardAuth to
 *   auth-service's `/auth/verify?access=<the entry's access>` copying `X-User-ID` and `X-Username`
 *   from its answer (`trustForwardHeader: false`); then, for `rateLimit.perUser` on an entry that
 *   requires a token, a rate limit keyed by the verified `X-User-ID`.
 *
 * What Traefik cannot do as the gateway does: its rate limits are token buckets per Traefik
 * instance and per router (`burst` = the budget, refilled at budget/window: up to twice the budget in
 * a first window), not fixed windows shared in Redis; the gateway's global per-address and per-user
 * budgets and their `X-RateLimit-*` headers have no equivalent here; `perUser` on a public entry is
 * left out (anonymous requests have no `X-User-ID` and would share one bucket); a path whose entry
 * lacks the method is a 404, not a 405 with `Allow`; Traefik sets no `X-Request-ID` (the service makes one).
 * @throws Error when two entries get router names that differ only in case, or a service has no URL.
 */
export function traefikDynamicConfig(options: TraefikConfigOptions): TraefikDynamicConfig {
  const routes = options.routes ?? GATEWAY_ROUTES;
  const upstreamUrl = options.upstreamUrl;
  const verifyUrl = options.verifyUrl ?? `${upstreamUrl('auth-service')}/auth/verify`;
  const entryPoints = [...(options.entryPoints ?? ['web'])];

  const stripIdentity: HeadersMiddleware = { customRequestHeaders: Object.fromEntries(IDENTITY_HEADERS.map((name) => [name, ''])) };
  const config: TraefikDynamicConfig = {
    http: { routers: {}, services: {}, middlewares: { [STRIP_IDENTITY_MIDDLEWARE]: { headers: stripIdentity } } },
  };
  const { routers, services, middlewares } = config.http;
  const taken = new Map<string, string>();

  routes.forEach((route, index) => {
    const name = traefikRouterName(route);
    const clash = taken.get(name.toLowerCase());
    if (clash !== undefined) throw new Error(`Route table entries ${clash} and ${route.prefix} would share the router name ${name}`);
    taken.set(name.toLowerCase(), route.prefix);

    const chain = [STRIP_IDENTITY_MIDDLEWARE];
    const windowSeconds = route.rateLimit?.windowSeconds ?? 60;
    const perAddress = route.rateLimit?.perAddress;
    if (perAddress !== undefined) {
      const limitName = `${name}-rate-limit-address`;
      // No sourceCriterion: Traefik then groups by the connection's remote address.
      const limit: RateLimitMiddleware = { average: perAddress, period: `${windowSeconds}s`, burst: perAddress };
      middlewares[limitName] = { rateLimit: limit };
      chain.push(limitName);
    }
    if (route.verifyToken ?? true) {
      const authName = forwardAuthMiddlewareName(route.access);
      const forwardAuth: ForwardAuthMiddleware = {
        address: `${verifyUrl}?access=${route.access}`,
        trustForwardHeader: false,
        authResponseHeaders: [...IDENTITY_HEADERS],
      };
      middlewares[authName] = { forwardAuth };
      chain.push(authName);
      const perUser = route.rateLimit?.perUser;
      if (perUser !== undefined && route.access !== 'public') {
        const limitName = `${name}-rate-limit-user`;
        const limit: RateLimitMiddleware = { average: perUser, period: `${windowSeconds}s`, burst: perUser, sourceCriterion: { requestHeaderName: 'X-User-ID' } };
        middlewares[limitName] = { rateLimit: limit };
        chain.push(limitName);
      }
    }

    services[route.service] ??= { loadBalancer: { servers: [{ url: upstreamUrl(route.service) }] } };
    routers[name] = {
      entryPoints: [...entryPoints],
      rule: traefikRule(route),
      priority: ROUTER_PRIORITY_BASE + routes.length - index,
      middlewares: chain,
      service: route.service,
    };
  });
  return config;
}

/** Options of {@link traefikStaticConfig}. */
export interface TraefikStaticOptions {
  /** Where Traefik reads the dynamic configuration file. Default `/etc/traefik/dynamic.yml`. */
  dynamicFile?: string;
  /** The public entry point's address. Default `:80`. */
  address?: string;
  /** The internal entry point serving `/ping` (health checks; not to be published). Default `:8082`. */
  pingAddress?: string;
}

/**
 * Traefik v3's static configuration for Compose: entry point `web` (`address`), entry point
 * `traefik` (`pingAddress`) with `/ping` for `traefik healthcheck --ping`, the file provider watching
 * `dynamicFile`, no dashboard, no version checks. Client `X-Forwarded-*` headers are not trusted
 * (no `forwardedHeaders.trustedIPs`), so rate limits see the connection's address.
 */
export function traefikStaticConfig(options: TraefikStaticOptions = {}): TraefikStaticConfig {
  return {
    global: { checkNewVersion: false, sendAnonymousUsage: false },
    entryPoints: {
      web: { address: options.address ?? ':80' },
      traefik: { address: options.pingAddress ?? ':8082' },
    },
    ping: { entryPoint: 'traefik' },
    providers: { file: { filename: options.dynamicFile ?? '/etc/traefik/dynamic.yml', watch: true } },
    log: { level: 'INFO' },
  };
}

/**
 * `config` in the layout of Traefik's KV providers (Consul, etcd, Redis, ZooKeeper): one key per
 * leaf, `<rootKey>/http/routers/<name>/rule`, list items as `/0`, `/1`, …, every value a string
 * (`true`, `42`; an empty string stays empty, which the headers middleware reads as "remove").
 * Traefik joins a list of plain values with commas, so no list item may hold one.
 * @param rootKey the provider's `rootKey`. Default `traefik`.
 * @throws Error for a list item with a comma, or a value that is not a string, number or boolean.
 */
export function traefikKvEntries(config: object, rootKey = 'traefik'): Record<string, string> {
  const entries: Record<string, string> = {};
  const visit = (value: unknown, key: string, inList: boolean): void => {
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) {
      value.forEach((item, index) => visit(item, `${key}/${index}`, true));
      return;
    }
    if (typeof value === 'object') {
      for (const [name, child] of Object.entries(value)) visit(child, `${key}/${name}`, false);
      return;
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') throw new Error(`${key}: a ${typeof value} has no KV form`);
    const text = String(value);
    if (inList && text.includes(',')) throw new Error(`${key}: Traefik would split the list item ${JSON.stringify(text)} at its comma`);
    entries[key] = text;
  };
  visit(config, rootKey, false);
  return entries;
}
