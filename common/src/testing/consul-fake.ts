import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** One request the fake Consul received. */
export interface FakeConsulCall {
  method: string;
  /** The path without the query (`/v1/agent/service/register`). */
  path: string;
  query: Record<string, string>;
  /** The parsed JSON body (the raw text when it is not JSON; `undefined` without one). */
  body: unknown;
  /** The `X-Consul-Token` it carried. */
  token: string | undefined;
}

/** A service instance registered on the fake agent, with its check's state. */
export interface FakeConsulService {
  id: string;
  name: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  /** The registration's `Check`, as sent. */
  checkDefinition: Record<string, unknown> | undefined;
  /** `passing` without a check; else `critical` until the check first passes (Consul's default). */
  status: 'passing' | 'warning' | 'critical';
  /** The last check's outcome, as Consul's `Output`. */
  output: string;
  /** How often the fake has run the check. */
  checkRuns: number;
}

/** Options of {@link FakeConsul.start}. */
export interface FakeConsulOptions {
  /** Listen on this port (default: a free one). */
  port?: number;
  /** Require this ACL token (`X-Consul-Token`) on every request: 403 without it. */
  token?: string;
  /** Operations one transaction may hold (Consul's limit, 128). */
  maxTxnOperations?: number;
}

const NODE = { ID: '5e1b2c3d-0000-4000-8000-000000000001', Node: 'fake-consul', Address: '127.0.0.1', Datacenter: 'dc1' };

/** Milliseconds of a Go duration (`10s`, `1m30s`, `250ms`). */
function parseDuration(value: unknown): number | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = value;
  while (rest.length > 0) {
    const match = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (!match) return undefined;
    total += Number(match[1]) * units[match[2]!]!;
    rest = rest.slice(match[0].length);
  }
  return total;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A stand-in for a Consul agent, for tests: the documented endpoints CivilDIY uses, in memory, on a
 * real port.
 *
 * - `PUT /v1/agent/service/register` (a service with one HTTP `Check`), `PUT /v1/agent/service/deregister/<id>`,
 *   `GET /v1/agent/service/<id>`;
 * - `GET /v1/health/service/<name>` with `passing`, and blocking queries (`index`, `wait`; answers
 *   carry `X-Consul-Index`, and a query waits until that service's index passes the given one);
 * - `GET|PUT|DELETE /v1/kv/<key>` (`recurse`, `keys`) and `PUT /v1/txn` (KV verbs `set`, `delete`,
 *   `delete-tree`, `get`, `check-not-exists`; all or nothing, 409 with `Errors`, 413 past the limit).
 *
 * Checks are real: the fake calls each registered check's URL at once and then every `Interval`
 * (any interval, not floored to Consul's 1 s), with its `Timeout` (default 10 s): 2xx passing, 429
 * warning, anything else critical, as Consul does. A new instance is `critical` until its check first
 * passes. Not simulated: `DeregisterCriticalServiceAfter` (recorded only), ACL policies (one token or
 * none), datacenters, sessions.
 *
 * Every request is recorded in {@link calls} (and can be held up: {@link intercept}). Faults: {@link fail} answers every request with an
 * error status; {@link stop} makes it unreachable (its state and checks go on) until {@link resume}.
 */
export class FakeConsul {
  /** Every request received, in order. */
  readonly calls: FakeConsulCall[] = [];
  private readonly registered = new Map<string, FakeConsulService & { timer?: NodeJS.Timeout; stopped?: boolean }>();
  private readonly kvStore = new Map<string, { value: string; createIndex: number; modifyIndex: number }>();
  private readonly serviceIndexes = new Map<string, number>();
  private readonly waiters = new Set<{ service: string; wake: () => void }>();
  private readonly sockets = new Set<Socket>();
  private raftIndex = 10;
  private kvIndex = 1;
  private failure: number | undefined;
  private server: Server | undefined;
  private interceptor: ((call: FakeConsulCall) => Promise<void> | void) | undefined;

  private constructor(
    private port: number,
    private readonly options: FakeConsulOptions,
  ) {}

  /** Starts a fake agent and resolves once it listens on 127.0.0.1. */
  static async start(options: FakeConsulOptions = {}): Promise<FakeConsul> {
    const fake = new FakeConsul(options.port ?? 0, options);
    await fake.resume();
    return fake;
  }

  /** `http://127.0.0.1:<port>`, for `CONSUL_HTTP_ADDR`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The calls of one method whose path starts with `pathPrefix`. */
  callsTo(method: string, pathPrefix: string): FakeConsulCall[] {
    return this.calls.filter((call) => call.method === method && call.path.startsWith(pathPrefix));
  }

  /** The registered instances (of `name`, when given), with their check state. */
  services(name?: string): FakeConsulService[] {
    return [...this.registered.values()]
      .filter((service) => name === undefined || service.name === name)
      .map(({ timer: _timer, stopped: _stopped, ...service }) => ({ ...service, tags: [...service.tags], meta: { ...service.meta } }));
  }

  /** The KV store's content. */
  kv(): Record<string, string> {
    return Object.fromEntries([...this.kvStore].map(([key, entry]) => [key, entry.value]));
  }

  /** Forgets every registered instance, as an agent restarted without its state would. */
  forgetServices(): void {
    for (const id of [...this.registered.keys()]) this.remove(id);
  }

  /** Answers every request with `status` (e.g. 500, Consul's "No cluster leader") from now on; `undefined` heals it. Open blocking queries fail at once. */
  fail(status: number | undefined): void {
    this.failure = status;
    if (status !== undefined) for (const waiter of [...this.waiters]) waiter.wake();
  }

  /** Runs `handler` on each request once it is recorded; the answer waits for it. `undefined` removes it. */
  intercept(handler: ((call: FakeConsulCall) => Promise<void> | void) | undefined): void {
    this.interceptor = handler;
  }

  /** Stops listening and cuts every open connection: Consul is unreachable. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await new Promise((resolve) => server.close(resolve));
  }

  /** Listens again (on the same port). */
  async resume(): Promise<void> {
    if (this.server) return;
    const server = createServer((request, response) => void this.handle(request, response));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    this.port = address.port;
    this.server = server;
  }

  /** Stops the checks and the server. */
  async close(): Promise<void> {
    for (const service of this.registered.values()) {
      service.stopped = true;
      clearTimeout(service.timer);
    }
    await this.stop();
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://fake-consul');
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = undefined;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const token = request.headers['x-consul-token'];
    const call: FakeConsulCall = {
      method: request.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      token: typeof token === 'string' ? token : undefined,
    };
    this.calls.push(call);
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      if (response.destroyed) return;
      const isText = typeof payload === 'string';
      response.writeHead(status, { 'content-type': isText ? 'text/plain; charset=utf-8' : 'application/json', ...headers });
      response.end(isText ? payload : JSON.stringify(payload));
    };
    try {
      await this.interceptor?.(call);
      if (this.failure !== undefined) throw new HttpError(this.failure, 'No cluster leader');
      if (this.options.token !== undefined && call.token !== this.options.token) throw new HttpError(403, 'ACL not found');
      const answer = await this.route(call, text, request);
      if (this.failure !== undefined) throw new HttpError(this.failure, 'No cluster leader');
      send(answer.status ?? 200, answer.body, answer.headers);
    } catch (error) {
      send(error instanceof HttpError ? error.status : 500, error instanceof Error ? error.message : String(error));
    }
  }

  private async route(call: FakeConsulCall, text: string, request: IncomingMessage): Promise<{ status?: number; body: unknown; headers?: Record<string, string> }> {
    const { method, path } = call;
    if (method === 'PUT' && path === '/v1/agent/service/register') return { body: this.register(call.body) };
    let match = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(path);
    if (match && method === 'PUT') {
      this.remove(decodeURIComponent(match[1]!));
      return { body: '' };
    }
    match = /^\/v1\/agent\/service\/(.+)$/.exec(path);
    if (match && method === 'GET') {
      const service = this.registered.get(decodeURIComponent(match[1]!));
      if (!service) throw new HttpError(404, `unknown service ID: ${decodeURIComponent(match[1]!)}`);
      return { body: { ID: service.id, Service: service.name, Tags: service.tags, Meta: service.meta, Port: service.port, Address: service.address, Datacenter: 'dc1' } };
    }
    match = /^\/v1\/health\/service\/(.+)$/.exec(path);
    if (match && method === 'GET') return this.health(decodeURIComponent(match[1]!), call.query, request);
    match = /^\/v1\/kv\/(.*)$/.exec(path);
    if (match) return this.kvRequest(method, decodeURIComponent(match[1]!), call.query, text);
    if (method === 'PUT' && path === '/v1/txn') return this.transaction(call.body);
    throw new HttpError(404, `the fake Consul has no ${method} ${path}`);
  }

  private register(body: unknown): string {
    if (typeof body !== 'object' || body === null) throw new HttpError(400, 'Request decode failed: not a JSON object');
    const spec = body as Record<string, unknown>;
    if (typeof spec.Name !== 'string' || spec.Name === '') throw new HttpError(400, 'Missing service name');
    const check = spec.Check as Record<string, unknown> | undefined;
    if (check && typeof check.HTTP === 'string' && parseDuration(check.Interval) === undefined) throw new HttpError(400, 'Interval must be > 0 for Script, HTTP, H2PING, TCP or UDP checks');
    const id = typeof spec.ID === 'string' && spec.ID !== '' ? spec.ID : spec.Name;
    this.remove(id, false);
    const service: FakeConsulService & { timer?: NodeJS.Timeout; stopped?: boolean } = {
      id,
      name: spec.Name,
      address: typeof spec.Address === 'string' ? spec.Address : '',
      port: typeof spec.Port === 'number' ? spec.Port : 0,
      tags: Array.isArray(spec.Tags) ? spec.Tags.map(String) : [],
      meta: typeof spec.Meta === 'object' && spec.Meta !== null ? Object.fromEntries(Object.entries(spec.Meta).map(([k, v]) => [k, String(v)])) : {},
      checkDefinition: check,
      status: check ? ((check.Status as FakeConsulService['status'] | undefined) ?? 'critical') : 'passing',
      output: '',
      checkRuns: 0,
    };
    this.registered.set(id, service);
    this.changed(service.name);
    if (check && typeof check.HTTP === 'string') void this.runCheck(service, check.HTTP, parseDuration(check.Interval)!, parseDuration(check.Timeout) ?? 10_000);
    return '';
  }

  private async runCheck(service: FakeConsulService & { timer?: NodeJS.Timeout; stopped?: boolean }, url: string, intervalMs: number, timeoutMs: number): Promise<void> {
    if (service.stopped) return;
    let status: FakeConsulService['status'];
    let output: string;
    try {
      const answer = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      await answer.arrayBuffer();
      status = answer.ok ? 'passing' : answer.status === 429 ? 'warning' : 'critical';
      output = `HTTP GET ${url}: ${answer.status} ${answer.statusText}`;
    } catch (error) {
      status = 'critical';
      output = `Get "${url}": ${error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error)}`;
    }
    if (service.stopped) return;
    service.checkRuns++;
    service.output = output;
    if (service.status !== status) {
      service.status = status;
      this.changed(service.name);
    }
    service.timer = setTimeout(() => void this.runCheck(service, url, intervalMs, timeoutMs), intervalMs);
  }

  private remove(id: string, notify = true): void {
    const service = this.registered.get(id);
    if (!service) return;
    service.stopped = true;
    clearTimeout(service.timer);
    this.registered.delete(id);
    if (notify) this.changed(service.name);
  }

  private changed(service: string): void {
    this.serviceIndexes.set(service, ++this.raftIndex);
    for (const waiter of [...this.waiters]) if (waiter.service === service) waiter.wake();
  }

  private async health(name: string, query: Record<string, string>, request: IncomingMessage) {
    const requested = Number(query.index ?? '0');
    if (requested > 0 && (this.serviceIndexes.get(name) ?? 1) <= requested) {
      const waitMs = Math.min(parseDuration(query.wait) ?? 300_000, 600_000);
      await new Promise<void>((resolve) => {
        const waiter = { service: name, wake: () => finish() };
        const timer = setTimeout(() => finish(), waitMs);
        const finish = () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          request.socket.off('close', finish);
          resolve();
        };
        this.waiters.add(waiter);
        request.socket.once('close', finish);
      });
    }
    const passingOnly = query.passing !== undefined && query.passing !== 'false' && query.passing !== '0';
    const entries = [...this.registered.values()]
      .filter((service) => service.name === name && (!passingOnly || service.status === 'passing'))
      .map((service) => ({
        Node: NODE,
        Service: { ID: service.id, Service: service.name, Tags: service.tags, Address: service.address, Meta: service.meta, Port: service.port, Datacenter: 'dc1' },
        Checks: service.checkDefinition
          ? [{ Node: NODE.Node, CheckID: String(service.checkDefinition.CheckID ?? `service:${service.id}`), Name: String(service.checkDefinition.Name ?? ''), Status: service.status, Output: service.output, ServiceID: service.id, ServiceName: service.name }]
          : [],
      }));
    return { body: entries, headers: { 'x-consul-index': String(this.serviceIndexes.get(name) ?? 1) } };
  }

  private kvRequest(method: string, key: string, query: Record<string, string>, text: string) {
    const index = { 'x-consul-index': String(this.kvIndex) };
    const under = (prefix: string) => [...this.kvStore.keys()].filter((candidate) => candidate.startsWith(prefix)).sort();
    if (method === 'GET') {
      if (query.keys !== undefined) {
        const keys = under(key);
        if (keys.length === 0) return { status: 404, body: '', headers: index };
        return { body: keys, headers: index };
      }
      const keys = query.recurse !== undefined ? under(key) : this.kvStore.has(key) ? [key] : [];
      if (keys.length === 0) return { status: 404, body: '', headers: index };
      return { body: keys.map((found) => this.kvEntry(found, true)), headers: index };
    }
    if (method === 'PUT') {
      this.apply([{ verb: 'set', key, value: text }]);
      return { body: true };
    }
    if (method === 'DELETE') {
      this.apply([{ verb: query.recurse !== undefined ? 'delete-tree' : 'delete', key }]);
      return { body: true };
    }
    throw new HttpError(405, `method ${method} not allowed`);
  }

  private kvEntry(key: string, withValue: boolean) {
    const entry = this.kvStore.get(key)!;
    return { LockIndex: 0, Key: key, Flags: 0, Value: withValue ? Buffer.from(entry.value, 'utf8').toString('base64') : null, CreateIndex: entry.createIndex, ModifyIndex: entry.modifyIndex };
  }

  private transaction(body: unknown) {
    if (!Array.isArray(body)) throw new HttpError(400, 'Failed to parse body: not a JSON array');
    const max = this.options.maxTxnOperations ?? 128;
    if (body.length > max) throw new HttpError(413, `Transaction contains too many operations (${body.length} > ${max})`);
    const operations = body.map((item, opIndex) => {
      const kv = (item as { KV?: Record<string, unknown> }).KV;
      if (!kv || typeof kv.Verb !== 'string' || typeof kv.Key !== 'string') throw new HttpError(400, `Failed to parse body: operation ${opIndex} is not a KV operation`);
      if (kv.Verb === 'set' && typeof kv.Value !== 'string') throw new HttpError(400, `Failed to parse body: operation ${opIndex} has no Value`);
      return { verb: kv.Verb, key: kv.Key, value: kv.Verb === 'set' ? Buffer.from(kv.Value as string, 'base64').toString('utf8') : '' };
    });
    const { results, errors } = this.apply(operations);
    if (errors.length > 0) return { status: 409, body: { Results: null, Errors: errors } };
    return { body: { Results: results, Errors: null } };
  }

  /** Applies KV operations all or nothing. */
  private apply(operations: { verb: string; key: string; value?: string }[]) {
    const draft = new Map(this.kvStore);
    const index = this.raftIndex + 1;
    const results: unknown[] = [];
    const errors: { OpIndex: number; What: string }[] = [];
    operations.forEach(({ verb, key, value }, opIndex) => {
      switch (verb) {
        case 'set': {
          const existing = draft.get(key);
          draft.set(key, { value: value ?? '', createIndex: existing?.createIndex ?? index, modifyIndex: index });
          results.push({ KV: { LockIndex: 0, Key: key, Flags: 0, Value: null, CreateIndex: existing?.createIndex ?? index, ModifyIndex: index } });
          break;
        }
        case 'delete':
          draft.delete(key);
          break;
        case 'delete-tree':
          for (const candidate of [...draft.keys()]) if (candidate.startsWith(key)) draft.delete(candidate);
          break;
        case 'get': {
          const entry = draft.get(key);
          if (!entry) errors.push({ OpIndex: opIndex, What: `key "${key}" doesn't exist` });
          else results.push({ KV: { LockIndex: 0, Key: key, Flags: 0, Value: Buffer.from(entry.value).toString('base64'), CreateIndex: entry.createIndex, ModifyIndex: entry.modifyIndex } });
          break;
        }
        case 'check-not-exists':
          if (draft.has(key)) errors.push({ OpIndex: opIndex, What: `key "${key}" exists` });
          break;
        default:
          errors.push({ OpIndex: opIndex, What: `unknown KV verb "${verb}"` });
      }
    });
    if (errors.length === 0) {
      this.raftIndex = index;
      this.kvIndex = index;
      this.kvStore.clear();
      for (const [key, entry] of draft) this.kvStore.set(key, entry);
    }
    return { results, errors };
  }
}
