import type { ServiceDiscovery } from '@civildiy/common/discovery';
import { fetchFailureReason } from './fetch-failure.ts';
import type { RouteTable } from './route-table.ts';

/** An OpenAPI 3 document, as far as merging needs to know it. */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; description?: string; version: string; [key: string]: unknown };
  paths?: Record<string, Record<string, unknown>>;
  components?: Record<string, Record<string, unknown>>;
  tags?: { name: string; description?: string }[];
  [key: string]: unknown;
}

/** One service's document, or why there is none. */
export type ServiceDocument = { service: string; document: OpenApiDocument } | { service: string; unavailable: string };

const OPERATION_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

function isDeepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A copy of `value` with every `$ref` in `renamed` pointed at its new name. */
function rewriteRefs(value: unknown, renamed: ReadonlyMap<string, string>): unknown {
  if (renamed.size === 0) return value;
  if (Array.isArray(value)) return value.map((item) => rewriteRefs(item, renamed));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = key === '$ref' && typeof item === 'string' ? (renamed.get(item) ?? item) : rewriteRefs(item, renamed);
  }
  return out;
}

/**
 * Merges the services' documents into the gateway's one. Paths are already the public ones (the
 * gateway forwards them unchanged); only the operations the route table sends to that service are
 * kept, so a service's own `/health/*` or `/metrics` do not appear. Every operation is tagged with
 * its service. Components keep their names unless two services define the same name differently;
 * then the later one becomes `<service>.<name>` and its references follow. A service without a
 * document is listed as unavailable in the description instead of failing the whole document.
 * `own` (the gateway's own routes) is kept whole.
 */
export function mergeOpenApi(options: { own: OpenApiDocument; services: readonly ServiceDocument[]; routes: RouteTable }): OpenApiDocument {
  const { own, services, routes } = options;
  const paths: Record<string, Record<string, unknown>> = {};
  const components: Record<string, Record<string, unknown>> = {};
  const tags: { name: string; description?: string }[] = [];
  const operationIds = new Set<string>();
  const unavailable: string[] = [];

  const addDocument = (service: string, document: OpenApiDocument, keep: (method: string, path: string) => boolean) => {
    const renamed = new Map<string, string>();
    const ownComponents = document.components ?? {};
    for (const [kind, entries] of Object.entries(ownComponents)) {
      const merged = (components[kind] ??= {});
      for (const [name, definition] of Object.entries(entries ?? {})) {
        if (!(name in merged) || isDeepEqual(merged[name], definition)) continue;
        renamed.set(`#/components/${kind}/${name}`, `#/components/${kind}/${service}.${name}`);
      }
    }
    for (const [kind, entries] of Object.entries(ownComponents)) {
      const merged = components[kind]!;
      for (const [name, definition] of Object.entries(entries ?? {})) {
        const target = renamed.has(`#/components/${kind}/${name}`) ? `${service}.${name}` : name;
        merged[target] = rewriteRefs(definition, renamed);
      }
    }
    let kept = 0;
    for (const [path, item] of Object.entries(document.paths ?? {})) {
      for (const [method, operation] of Object.entries(item)) {
        if (!OPERATION_METHODS.has(method)) continue;
        if (!keep(method, path)) continue;
        const rewritten: Record<string, unknown> = { ...(rewriteRefs(operation, renamed) as Record<string, unknown>), tags: [service] };
        if (typeof rewritten.operationId === 'string') {
          const operationId = operationIds.has(rewritten.operationId) ? `${service}.${rewritten.operationId}` : rewritten.operationId;
          rewritten.operationId = operationId;
          operationIds.add(operationId);
        }
        (paths[path] ??= {})[method] = rewritten;
        kept += 1;
      }
    }
    if (kept > 0) tags.push({ name: service, description: document.info.description || document.info.title });
  };

  addDocument('gateway', own, () => true);
  for (const source of services) {
    if ('unavailable' in source) {
      unavailable.push(`- **${source.service}**: unavailable (${source.unavailable}); its operations are missing from this document.`);
      tags.push({ name: source.service, description: `Unavailable: ${source.unavailable}` });
      continue;
    }
    addDocument(source.service, source.document, (method, path) => routes.serviceFor(method, path) === source.service);
  }

  const description = [
    'Every CivilDIY API behind the gateway. Paths are forwarded to the service named in each operation\'s tag.',
    ...(unavailable.length > 0 ? ['', '**Some services did not answer:**', ...unavailable] : []),
  ].join('\n');
  return {
    openapi: own.openapi,
    info: { title: 'CivilDIY API', description, version: own.info.version },
    components,
    paths,
    tags,
  };
}

/**
 * The merged document of `GET /docs/json`: each service's `/docs/json` is fetched when the document
 * is first asked for and then reused for `cacheMs`; concurrent requests share one fetch.
 */
export class ApiDocs {
  private cached: { at: number; document: Promise<OpenApiDocument> } | undefined;

  constructor(
    private readonly options: {
      services: readonly string[];
      discovery: ServiceDiscovery;
      routes: RouteTable;
      own: () => OpenApiDocument;
      cacheMs: number;
      fetchTimeoutMs: number;
    },
  ) {}

  /** The merged document (from cache when fresh). */
  document(): Promise<OpenApiDocument> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > this.options.cacheMs) {
      const document = this.build();
      this.cached = { at: now, document };
      document.catch(() => {
        if (this.cached?.document === document) this.cached = undefined;
      });
    }
    return this.cached.document;
  }

  private async build(): Promise<OpenApiDocument> {
    const services = await Promise.all(this.options.services.map((service) => this.fetchDocument(service)));
    return mergeOpenApi({ own: this.options.own(), services, routes: this.options.routes });
  }

  private async fetchDocument(service: string): Promise<ServiceDocument> {
    try {
      const base = await this.options.discovery.resolve(service);
      const response = await fetch(`${base}/docs/json`, { signal: AbortSignal.timeout(this.options.fetchTimeoutMs) });
      if (!response.ok) return { service, unavailable: `GET /docs/json answered ${response.status}` };
      const document = (await response.json()) as OpenApiDocument;
      if (typeof document !== 'object' || document === null || typeof document.paths !== 'object') {
        return { service, unavailable: 'its /docs/json is not an OpenAPI document' };
      }
      return { service, document };
    } catch (error) {
      return { service, unavailable: fetchFailureReason(error, this.options.fetchTimeoutMs) };
    }
  }
}
