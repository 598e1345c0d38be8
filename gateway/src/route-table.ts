import { pathHasPrefix, routeMethods, type GatewayRoute, type RouteMethod } from '@civildiy/common/topology';

/** A route table entry prepared for matching. */
export interface CompiledRoute {
  readonly route: GatewayRoute;
  readonly prefix: string;
  readonly service: string;
  readonly methods: ReadonlySet<string>;
  readonly protected: boolean;
  readonly verifyToken: boolean;
  /** Metric label and rate-limit key part, e.g. `/auth/login POST`. */
  readonly label: string;
}

/** What the table says about a request. */
export type RouteMatch =
  | { kind: 'route'; route: CompiledRoute }
  /** Some entry has the path, none the method; `allow` lists the methods that would match. */
  | { kind: 'method_not_allowed'; allow: string[] }
  | { kind: 'not_found' };

function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path : path.slice(0, end);
}

/**
 * The route table compiled for the request path: entries grouped by their first path segment, so a
 * request compares against the one to three entries of its segment instead of the whole table.
 * First match wins, as in the table.
 */
export class RouteTable {
  readonly routes: readonly CompiledRoute[];
  private readonly bySegment = new Map<string, CompiledRoute[]>();

  constructor(routes: readonly GatewayRoute[]) {
    this.routes = routes.map((route) => {
      const methods = routeMethods(route);
      return {
        route,
        prefix: route.prefix,
        service: route.service,
        methods,
        protected: route.access === 'protected',
        verifyToken: route.verifyToken ?? true,
        label: `${route.prefix}${route.methods ? ` ${route.methods.join(',')}` : ''}`,
      };
    });
    for (const compiled of this.routes) {
      const segment = firstSegment(compiled.prefix);
      const group = this.bySegment.get(segment) ?? [];
      group.push(compiled);
      this.bySegment.set(segment, group);
    }
  }

  /** The entry for `method` on `path` (no query string). */
  match(method: string, path: string): RouteMatch {
    const group = this.bySegment.get(firstSegment(path));
    if (!group) return { kind: 'not_found' };
    let allow: Set<string> | undefined;
    for (const compiled of group) {
      if (!pathHasPrefix(path, compiled.prefix)) continue;
      if (compiled.methods.has(method)) return { kind: 'route', route: compiled };
      allow ??= new Set();
      for (const m of compiled.methods) allow.add(m);
    }
    return allow ? { kind: 'method_not_allowed', allow: [...allow] } : { kind: 'not_found' };
  }

  /** The service serving `method` on `path`, if any (the docs use it to keep only reachable operations). */
  serviceFor(method: RouteMethod | string, path: string): string | undefined {
    const match = this.match(method.toUpperCase(), path);
    return match.kind === 'route' ? match.route.service : undefined;
  }
}
