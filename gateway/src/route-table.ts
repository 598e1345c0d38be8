import type { Role } from '@civildiy/common/contracts';
import { pathHasPrefix, routeMethods, type GatewayRoute, type RouteMethod } from '@civildiy/common/topology';

/** A route table entry prepared for matching. */
export interface CompiledRoute {
  readonly route: GatewayRoute;
  readonly prefix: string;
  readonly service: string;
  readonly methods: ReadonlySet<string>;
  /** A valid bearer token is required (`protected` and `operator` entries). */
  readonly protected: boolean;
  /** The role the token must carry (`operator` entries), else 403 `auth.role_required`. */
  readonly role: Role | undefined;
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

/**
 * What the gateway's router registers for one table prefix, at the prefix and at `<prefix>/*`.
 * Fastify's router takes the most specific registered prefix of a path, and every method is
 * registered at every prefix, so a request gets what the table's first match says for that prefix.
 * That is what the first match says for the request's own path too: a path has exactly the entries
 * of the longest table prefix it lies under.
 */
export interface RouterEntry {
  prefix: string;
  /** Methods forwarded, by the entry that serves them. */
  forwards: { route: CompiledRoute; methods: RouteMethod[] }[];
  /** Methods no entry serves under this prefix: 405 with `allow`. */
  refused: { methods: RouteMethod[]; allow: string[] } | undefined;
}

function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path : path.slice(0, end);
}

/** Compares letters whatever their case, as a case-insensitive upstream would (`ı` and `ſ` too). */
function folded(text: string): string {
  return text.toUpperCase();
}

/**
 * The route table compiled: the entries, what the gateway's router registers for them, and the
 * first-match lookup (for the merged API docs, which filter the services' operations by it).
 */
export class RouteTable {
  readonly routes: readonly CompiledRoute[];
  private readonly bySegment = new Map<string, CompiledRoute[]>();
  /** Every distinct prefix, with its case-folded form. */
  private readonly prefixes: { prefix: string; folded: string }[];
  /** Whether every prefix is lower-case ASCII: then only a path with upper case or escapes can be a lookalike. */
  private readonly lowerCasePrefixes: boolean;

  constructor(routes: readonly GatewayRoute[]) {
    this.routes = routes.map((route) => {
      const methods = routeMethods(route);
      return {
        route,
        prefix: route.prefix,
        service: route.service,
        methods,
        protected: route.access !== 'public',
        role: route.access === 'operator' ? 'operator' : undefined,
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
    this.prefixes = [...new Set(this.routes.map((compiled) => compiled.prefix))].map((prefix) => ({ prefix, folded: folded(prefix) }));
    this.lowerCasePrefixes = this.prefixes.every(({ prefix }) => /^[a-z0-9._~\-/]*$/.test(prefix));
  }

  /** The entry for `method` on `path` (no query string): the first whose prefix and methods match. */
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

  /** What the router registers for each prefix, for the `methods` the gateway forwards. */
  routerEntries(methods: readonly RouteMethod[]): RouterEntry[] {
    return this.prefixes.map(({ prefix }) => {
      const forwards = new Map<CompiledRoute, RouteMethod[]>();
      const refused: RouteMethod[] = [];
      let allow: string[] = [];
      for (const method of methods) {
        const match = this.match(method, prefix);
        if (match.kind === 'route') forwards.set(match.route, [...(forwards.get(match.route) ?? []), method]);
        else if (match.kind === 'method_not_allowed') {
          refused.push(method);
          allow = match.allow;
        }
      }
      return {
        prefix,
        forwards: [...forwards].map(([route, served]) => ({ route, methods: served })),
        refused: refused.length > 0 ? { methods: refused, allow } : undefined,
      };
    });
  }

  /**
   * The table prefix `path` spells in other letter case (`/search/INDEX/status` for `/search/index`),
   * if any. Such a path is not routed: an upstream that matched it case-insensitively would serve
   * the entry's resource under whatever entry the exact spelling falls to (often a public one).
   */
  lookalike(path: string): string | undefined {
    if (this.lowerCasePrefixes && !/[%A-Z]/.test(path)) return undefined;
    let decoded: string;
    try {
      decoded = folded(decodeURIComponent(path));
    } catch {
      return undefined;
    }
    for (const { prefix, folded: foldedPrefix } of this.prefixes) {
      if (pathHasPrefix(decoded, foldedPrefix) && !pathHasPrefix(path, prefix)) return prefix;
    }
    return undefined;
  }
}
