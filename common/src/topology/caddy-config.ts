import { GATEWAY_ROUTES, routeMethods, type GatewayRoute } from './routes.ts';
import { IDENTITY_HEADERS, traefikRouterName } from './traefik-config.ts';

/** Options of {@link caddyfileFromRoutes}. */
export interface CaddyConfigOptions {
  /** The route table. Default {@link GATEWAY_ROUTES}. */
  routes?: readonly GatewayRoute[];
  /** The port Caddy serves plain HTTP on. */
  port: number;
  /** The address it binds. Default every interface. */
  bindHost?: string;
  /** A service's address for `reverse_proxy` (`host:port` or `http://host:port`). */
  upstream: (service: string) => string;
  /** auth-service's address for `forward_auth`. Default `upstream('auth-service')`. */
  authUpstream?: string;
  /** Caddy's admin endpoint (`host:port`), or `off` (default: a config file is all it needs). */
  admin?: string;
}

/** What Caddy answers for a path no entry covers, in the services' error shape. */
const NOT_FOUND_BODY = JSON.stringify({ error: { code: 'route_not_found', message: 'No route for this path' } });

function unsetMatcher(header: string): string {
  return `unset-${header.toLowerCase()}`;
}

function caddyToken(text: string): string {
  if (/[\s{}"`#]/.test(text)) throw new Error(`A route prefix must be a plain Caddyfile token: ${JSON.stringify(text)}`);
  return text;
}

/**
 * A Caddyfile (Caddy 2.6+) for the gateway's route table, for running the system behind Caddy or
 * testing forward authentication with a real proxy: one `handle` block per entry, in table order
 * (named matchers keep their order, and only the first matching `handle` runs, as the gateway's
 * first match), matching the prefix on whole segments (`path /x /x/*`) and the entry's methods
 * (`GET` with `HEAD`). Inside, in this order (a `route` block keeps it): the client's `X-User-ID` and
 * `X-Username` are removed; unless the entry has `verifyToken: false`, `forward_auth` asks
 * auth-service's `/auth/verify?access=<the entry's access>` and copies `X-User-ID` and `X-Username`
 * from a 2xx answer (any other answer goes back to the client as it is); then `reverse_proxy` to the
 * service. Anything else is 404 `route_not_found`.
 *
 * Unlike the gateway: no rate limits (Caddy has none without a plugin); a method the entry lacks is
 * a 404, not a 405; Caddy's `path` matcher ignores letter case, so `/Posts` reaches posts-service
 * (which answers 404 for it) where the gateway refuses it.
 */
export function caddyfileFromRoutes(options: CaddyConfigOptions): string {
  const routes = options.routes ?? GATEWAY_ROUTES;
  const authUpstream = options.authUpstream ?? options.upstream('auth-service');
  const lines = [
    '# Generated from the gateway route table (GATEWAY_ROUTES) by caddyfileFromRoutes in @civildiy/common/topology.',
    '{',
    `\tadmin ${options.admin ?? 'off'}`,
    '\tauto_https off',
    '}',
    '',
    `:${options.port} {`,
  ];
  if (options.bindHost) lines.push(`\tbind ${options.bindHost}`);
  // Caddy 2.6's copy_headers sets a header the auth answer lacks to its placeholder's own text
  // ("{http.reverse_proxy.header.X-User-Id}"): such a header is removed after forward_auth (later
  // versions leave it unset, and this never matches).
  for (const header of IDENTITY_HEADERS) lines.push(`\t@${unsetMatcher(header)} header_regexp ${header} ^.http\\.reverse_proxy\\.header\\.`);
  for (const route of routes) {
    const name = traefikRouterName(route);
    const prefix = caddyToken(route.prefix.endsWith('/') ? route.prefix.slice(0, -1) : route.prefix);
    lines.push(`\t@${name} {`, `\t\tpath ${prefix || '/'} ${prefix}/*`);
    if (route.methods) lines.push(`\t\tmethod ${[...routeMethods(route)].join(' ')}`);
    lines.push('\t}', `\thandle @${name} {`, '\t\troute {');
    for (const header of IDENTITY_HEADERS) lines.push(`\t\t\trequest_header -${header}`);
    if (route.verifyToken ?? true) {
      lines.push(
        `\t\t\tforward_auth ${authUpstream} {`,
        `\t\t\t\turi /auth/verify?access=${route.access}`,
        `\t\t\t\tcopy_headers ${IDENTITY_HEADERS.join(' ')}`,
        '\t\t\t}',
        ...IDENTITY_HEADERS.map((header) => `\t\t\trequest_header @${unsetMatcher(header)} -${header}`),
      );
    }
    lines.push(`\t\t\treverse_proxy ${options.upstream(route.service)}`, '\t\t}', '\t}');
  }
  lines.push('\thandle {', '\t\theader Content-Type application/json', `\t\trespond \`${NOT_FOUND_BODY}\` 404`, '\t}', '}', '');
  return lines.join('\n');
}
