/** An HTTP method a gateway route can be limited to. */
export type RouteMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

/** Every {@link RouteMethod}: a route without `methods` accepts these. */
export const ROUTE_METHODS: readonly RouteMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * Who may call a route through the gateway.
 * - `public`: no token needed. A bearer token that is present must verify (else 401), and its user
 *   is forwarded as `X-User-ID`.
 * - `protected`: a valid bearer token is required (else 401).
 * - `operator`: a valid bearer token whose `roles` include `operator` (else 401, or 403
 *   `auth.role_required` for a valid token without the role). The service checks it again.
 */
export type RouteAccess = 'public' | 'protected' | 'operator';

/**
 * An extra budget for one route, counted in Redis on top of the gateway's global per-address and
 * per-user budgets (so it can only be tighter). Numbers are requests per window.
 */
export interface RouteRateLimit {
  /** Requests per client address per window. Unset: no extra per-address budget. */
  perAddress?: number;
  /** Requests per authenticated user per window. Unset: no extra per-user budget. */
  perUser?: number;
  /** The window in seconds. Default 60. */
  windowSeconds?: number;
}

/** One entry of the gateway's route table. */
export interface GatewayRoute {
  /**
   * The path prefix, matched on whole segments: `/posts` matches `/posts` and `/posts/x`, not
   * `/postsx`; letter case counts (a case variant such as `/Posts` is a 404). The gateway matches it
   * against the request's canonical path (each segment decoded once and re-encoded, no empty or dot
   * segments, no trailing slash) and forwards that path with no prefix stripping, so the service sees
   * exactly the path the gateway matched.
   */
  prefix: string;
  /** The upstream: a `SERVICES` name, or one of {@link PLANNED_SERVICES}. */
  service: string;
  /** Methods this entry accepts. Default: all. `GET` implies `HEAD`. */
  methods?: readonly RouteMethod[];
  access: RouteAccess;
  /** An extra, tighter budget for this route. */
  rateLimit?: RouteRateLimit;
  /**
   * `false`: the gateway does not look at the bearer token on this route; the service does. For the
   * auth endpoints, so a client that attaches an expired access token to `/auth/refresh` can still
   * refresh. Default `true`.
   */
  verifyToken?: boolean;
}

/** Services the route table already names that do not run yet; they have no default URL. */
export const PLANNED_SERVICES: readonly string[] = [];

/**
 * The gateway's route table: the first entry whose prefix and method match a request wins, so a
 * narrower entry comes before a wider one with the same prefix. The gateway routes by this list, and
 * the Compose Traefik configuration is to be generated from it: nowhere else lists the public paths.
 * A path no entry covers is a 404 at the gateway.
 */
export const GATEWAY_ROUTES: readonly GatewayRoute[] = [
  { prefix: '/.well-known/jwks.json', service: 'auth-service', methods: ['GET'], access: 'public', verifyToken: false },
  { prefix: '/auth/login', service: 'auth-service', methods: ['POST'], access: 'public', verifyToken: false, rateLimit: { perAddress: 20 } },
  { prefix: '/auth/register', service: 'auth-service', methods: ['POST'], access: 'public', verifyToken: false, rateLimit: { perAddress: 10 } },
  { prefix: '/auth', service: 'auth-service', access: 'public', verifyToken: false },
  { prefix: '/profiles', service: 'profile-service', methods: ['GET'], access: 'public' },
  { prefix: '/profiles', service: 'profile-service', access: 'protected' },
  { prefix: '/posts', service: 'posts-service', methods: ['GET'], access: 'public' },
  { prefix: '/posts', service: 'posts-service', access: 'protected' },
  // Rebuild triggers and progress (operations), before the public reads of /feed.
  { prefix: '/feed/rebuild', service: 'feed-service', access: 'operator' },
  { prefix: '/feed', service: 'feed-service', methods: ['GET'], access: 'public' },
  { prefix: '/catalog', service: 'order-service', methods: ['GET'], access: 'public' },
  { prefix: '/orders', service: 'order-service', access: 'protected' },
  { prefix: '/notifications', service: 'notification-service', access: 'protected' },
  // The index's state (failed rows carry provider errors), its redrive and the reindex: operations.
  { prefix: '/search/index', service: 'search-service', access: 'operator' },
  { prefix: '/search', service: 'search-service', methods: ['GET'], access: 'public' },
  // The dashboard signs operators in through auth-service (a login, so limited like one); the rest
  // of it, its page and its API, is for operators.
  { prefix: '/admin/session', service: 'dashboard', methods: ['POST'], access: 'public', verifyToken: false, rateLimit: { perAddress: 20 } },
  { prefix: '/admin', service: 'dashboard', access: 'operator' },
];

/** Whether `path` (no query string) lies under `prefix`, on whole path segments. */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.endsWith('/') || path.charCodeAt(prefix.length) === 47 /* '/' */;
}

/** The methods `route` accepts, with `HEAD` added wherever `GET` is. */
export function routeMethods(route: GatewayRoute): ReadonlySet<RouteMethod> {
  const methods = new Set<RouteMethod>(route.methods ?? ROUTE_METHODS);
  if (methods.has('GET')) methods.add('HEAD');
  return methods;
}
