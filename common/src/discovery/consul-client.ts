import { z } from 'zod';

/** What went wrong talking to Consul (stable; logs and tests rely on it). */
export type ConsulErrorCode =
  /** No connection (refused, reset, DNS). */
  | 'consul.unreachable'
  /** No answer within the request's time. */
  | 'consul.timeout'
  /** Consul answered with an error status (`status` says which). */
  | 'consul.request_failed'
  /** Consul answered 2xx with a body this client does not understand. */
  | 'consul.bad_answer'
  /** A transaction was rolled back (409): see {@link ConsulTransactionError.failures}. */
  | 'consul.transaction_rolled_back';

/** Raised by {@link ConsulClient} when a call to Consul fails. */
export class ConsulError extends Error {
  readonly code: ConsulErrorCode;
  /** The HTTP status Consul answered, when it answered. */
  readonly status: number | undefined;

  constructor(code: ConsulErrorCode, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options.status;
  }
}

/** A transaction Consul rolled back (`409`): nothing of it was applied. */
export class ConsulTransactionError extends ConsulError {
  /** Which operations failed (`opIndex` into the operations sent) and why. */
  readonly failures: { opIndex: number; what: string }[];

  constructor(failures: { opIndex: number; what: string }[]) {
    super('consul.transaction_rolled_back', `Consul rolled the transaction back: ${failures.map((f) => `operation ${f.opIndex}: ${f.what}`).join('; ') || 'no reason given'}`, {
      status: 409,
    });
    this.failures = failures;
  }
}

/**
 * An HTTP check the agent runs against the service (`Check` of the agent's service registration):
 * 2xx is passing, 429 warning, anything else (or no answer within `Timeout`) critical.
 */
export interface ConsulHttpCheck {
  CheckID?: string;
  Name?: string;
  /** The URL the agent calls, e.g. `http://10.0.0.5:8103/health/ready`. */
  HTTP: string;
  Method?: string;
  /** A Go duration: `10s`, `500ms`. */
  Interval: string;
  Timeout?: string;
  /** The agent removes the service after its check has been critical this long (at least `1m`). */
  DeregisterCriticalServiceAfter?: string;
  /** The status until the first run: `critical` by default. */
  Status?: 'passing' | 'warning' | 'critical';
}

/** The body of `PUT /v1/agent/service/register`: one instance of a service on the local agent. */
export interface ConsulServiceRegistration {
  /** Unique per agent (`<name>-<host>-<port>`). */
  ID: string;
  /** The logical service name, shared by its instances (`posts-service`). */
  Name: string;
  /** Where other processes reach this instance. */
  Address: string;
  Port: number;
  Tags?: string[];
  Meta?: Record<string, string>;
  Check?: ConsulHttpCheck;
}

/** One healthy instance, as `/v1/health/service/<name>` lists it. */
export interface ConsulServiceInstance {
  /** The instance's service ID. */
  id: string;
  /** The service name. */
  service: string;
  /** The service's address, or its node's when the service registered none. */
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  /** The Consul node (agent) it is registered on. */
  node: string;
}

/** An answer to a (blocking) health query. */
export interface ConsulHealthAnswer {
  /** `X-Consul-Index`: pass it as `index` to wait for the next change. */
  index: number;
  instances: ConsulServiceInstance[];
}

/** Options of {@link ConsulClient.healthyInstances}. */
export interface ConsulHealthQuery {
  /** Block until the result changes after this index (Consul's blocking queries); unset or 0: answer at once. */
  index?: number;
  /** The longest Consul blocks (its `wait`, at most 10 minutes). Default 60 s. */
  waitMs?: number;
  /** Abandons the query (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** One KV operation of a transaction (`/v1/txn`). Keys are full paths, without a leading slash. */
export type ConsulKvOperation =
  | { verb: 'set'; key: string; value: string }
  | { verb: 'delete'; key: string }
  /** Deletes every key starting with `key` (a prefix: end it with `/` to stay inside one folder). */
  | { verb: 'delete-tree'; key: string }
  /** Fails the transaction when `key` exists. */
  | { verb: 'check-not-exists'; key: string };

/** Options of {@link ConsulClient}. */
export interface ConsulClientOptions {
  /** The agent's HTTP address (`CONSUL_HTTP_ADDR`): `http(s)://host:port`, or `host:port` for http. */
  address: string;
  /** An ACL token (`CONSUL_HTTP_TOKEN`), sent as `X-Consul-Token`. */
  token?: string | undefined;
  /** A call that is not a blocking query gives up after this long (ms). Default 5,000. */
  timeoutMs?: number;
}

/** The most operations Consul accepts in one transaction (its documented limit; 64 before Consul 1.x raised it). */
export const CONSUL_MAX_TXN_OPERATIONS = 128;

const HealthEntry = z.object({
  Node: z.object({ Node: z.string(), Address: z.string() }),
  Service: z.object({
    ID: z.string(),
    Service: z.string(),
    Address: z.string().optional().default(''),
    Port: z.number().int(),
    Tags: z.array(z.string()).nullish(),
    Meta: z.record(z.string(), z.string()).nullish(),
  }),
});
const KvEntry = z.object({ Key: z.string(), Value: z.string().nullable() });
const TxnErrors = z.object({ Errors: z.array(z.object({ OpIndex: z.number(), What: z.string() })).nullish() });

/**
 * `http://host:port` from a `CONSUL_HTTP_ADDR` value (`host:port` means http, as for Consul's own CLI).
 * @throws Error when it is not an http(s) address without path.
 */
export function consulBaseUrl(address: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `http://${address}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`"${address}" is not an address of a Consul agent (http://host:port)`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new Error(`"${address}" is not an http(s)://host:port address of a Consul agent`);
  }
  return url.origin;
}

/** A Go duration for Consul (`10s`, `1500ms`). */
export function consulDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms));
  return whole % 1_000 === 0 ? `${whole / 1_000}s` : `${whole}ms`;
}

/** `encodeURIComponent` per path segment: KV keys and IDs keep their slashes. */
const encodePath = (value: string) => value.split('/').map(encodeURIComponent).join('/');

/**
 * A small typed client for the parts of Consul's HTTP API that CivilDIY uses: the local agent's
 * service registration, blocking queries on the health API, KV reads and KV transactions. Plain
 * `fetch`, no state besides its options; every call is bounded (`timeoutMs`, or a blocking query's
 * `wait` plus Consul's jitter and `timeoutMs`) and fails with a {@link ConsulError}.
 */
export class ConsulClient {
  /** `http(s)://host:port` of the agent. */
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  /** @throws Error when `address` is not an http(s) address. */
  constructor(options: ConsulClientOptions) {
    this.baseUrl = consulBaseUrl(options.address);
    this.token = options.token || undefined;
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  /**
   * Registers (or re-registers: it replaces the instance and its checks) a service instance on the
   * local agent: `PUT /v1/agent/service/register?replace-existing-checks=true`.
   */
  async registerService(registration: ConsulServiceRegistration, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.call('PUT', '/v1/agent/service/register', { query: { 'replace-existing-checks': 'true' }, body: registration, signal: options.signal });
  }

  /** Removes a service instance (and its checks) from the local agent; an unknown ID is no error. */
  async deregisterService(id: string): Promise<void> {
    await this.call('PUT', `/v1/agent/service/deregister/${encodePath(id)}`, { accept: [404] });
  }

  /** Whether the local agent has the service instance `id` registered (`GET /v1/agent/service/<id>`). */
  async hasService(id: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const { status } = await this.call('GET', `/v1/agent/service/${encodePath(id)}`, { accept: [404], signal: options.signal });
    return status !== 404;
  }

  /**
   * The instances of `service` whose checks all pass (`GET /v1/health/service/<name>?passing=true`).
   * With `index`, a blocking query: Consul answers when the result may have changed after that index,
   * or after `waitMs`.
   */
  async healthyInstances(service: string, query: ConsulHealthQuery = {}): Promise<ConsulHealthAnswer> {
    const waitMs = query.waitMs ?? 60_000;
    const blocking = query.index !== undefined && query.index > 0;
    const { text, headers } = await this.call('GET', `/v1/health/service/${encodePath(service)}`, {
      query: { passing: 'true', ...(blocking ? { index: String(query.index), wait: consulDuration(waitMs) } : {}) },
      // Consul adds up to wait/16 to spread wake-ups.
      timeoutMs: blocking ? waitMs + Math.ceil(waitMs / 16) + this.timeoutMs : this.timeoutMs,
      signal: query.signal,
    });
    const entries = this.parse(z.array(HealthEntry), text, `health of ${service}`);
    const index = Number(headers.get('x-consul-index') ?? '0');
    return {
      index: Number.isFinite(index) ? index : 0,
      instances: entries.map(({ Node, Service }) => ({
        id: Service.ID,
        service: Service.Service,
        address: Service.Address || Node.Address,
        port: Service.Port,
        tags: Service.Tags ?? [],
        meta: Service.Meta ?? {},
        node: Node.Node,
      })),
    };
  }

  /** Every key under `prefix` with its value (`GET /v1/kv/<prefix>?recurse`); empty when there is none. */
  async kvTree(prefix: string): Promise<Record<string, string>> {
    const { status, text } = await this.call('GET', `/v1/kv/${encodePath(prefix)}`, { query: { recurse: 'true' }, accept: [404] });
    if (status === 404) return {};
    const entries = this.parse(z.array(KvEntry), text, `KV under ${prefix}`);
    return Object.fromEntries(entries.map((entry) => [entry.Key, entry.Value === null ? '' : Buffer.from(entry.Value, 'base64').toString('utf8')]));
  }

  /** The keys under `prefix` (`GET /v1/kv/<prefix>?keys`); empty when there is none. */
  async kvKeys(prefix: string): Promise<string[]> {
    const { status, text } = await this.call('GET', `/v1/kv/${encodePath(prefix)}`, { query: { keys: 'true' }, accept: [404] });
    if (status === 404) return [];
    return this.parse(z.array(z.string()), text, `KV keys under ${prefix}`);
  }

  /**
   * Applies KV operations atomically (`PUT /v1/txn`): all or none. At most
   * {@link CONSUL_MAX_TXN_OPERATIONS} operations.
   * @throws ConsulTransactionError when Consul rolled it back.
   */
  async transaction(operations: readonly ConsulKvOperation[]): Promise<void> {
    if (operations.length === 0) return;
    const body = operations.map((operation) => ({
      KV: {
        Verb: operation.verb,
        Key: operation.key,
        ...(operation.verb === 'set' ? { Value: Buffer.from(operation.value, 'utf8').toString('base64') } : {}),
      },
    }));
    const { status, text } = await this.call('PUT', '/v1/txn', { body, accept: [409] });
    if (status === 409) {
      const errors = this.parse(TxnErrors, text, 'transaction').Errors ?? [];
      throw new ConsulTransactionError(errors.map((error) => ({ opIndex: error.OpIndex, what: error.What })));
    }
  }

  private parse<T extends z.ZodType>(schema: T, text: string, what: string): z.infer<T> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new ConsulError('consul.bad_answer', `Consul answered the ${what} with something that is not JSON`, { cause: error });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ConsulError('consul.bad_answer', `Consul answered the ${what} in an unexpected shape: ${parsed.error.message}`);
    return parsed.data;
  }

  private async call(
    method: 'GET' | 'PUT',
    path: string,
    options: { query?: Record<string, string>; body?: unknown; accept?: number[]; timeoutMs?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<{ status: number; text: string; headers: Headers }> {
    options.signal?.throwIfAborted();
    const url = `${this.baseUrl}${path}${options.query ? `?${new URLSearchParams(options.query).toString()}` : ''}`;
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers['x-consul-token'] = this.token;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal: options.signal ? AbortSignal.any([timeout, options.signal]) : timeout,
      });
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (timeout.aborted) throw new ConsulError('consul.timeout', `Consul at ${this.baseUrl} did not answer ${method} ${path} within ${timeoutMs} ms`, { cause: error });
      const reason = error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error);
      throw new ConsulError('consul.unreachable', `Consul at ${this.baseUrl} is unreachable (${reason})`, { cause: error });
    }
    if (!response.ok && !(options.accept ?? []).includes(response.status)) {
      throw new ConsulError('consul.request_failed', `Consul answered ${method} ${path} with ${response.status}: ${text.trim().slice(0, 300) || response.statusText}`, {
        status: response.status,
      });
    }
    return { status: response.status, text, headers: response.headers };
  }
}
