import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import type { AuthenticatedUser } from '@civildiy/common/service';
import type { ClientOrigin } from './client-address.ts';
import { payloadTooLarge, unforwardableUrl, upstreamTimeout, upstreamUnavailable } from './gateway-errors.ts';
import type { GatewayMetrics } from './gateway-metrics.ts';
import type { CompiledRoute } from './route-table.ts';

/** What the gateway decided about a request it forwards. */
export interface ProxiedRequest {
  route: CompiledRoute;
  client: ClientOrigin;
  user: AuthenticatedUser | undefined;
  /** `performance.now()` when the request went upstream. */
  sentAt: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set once the route table matched (the metrics and the proxy hooks read it). */
    proxied: ProxiedRequest | null;
  }
}

/** A pass-through that fails once more than `limit` bytes went by (bodies without Content-Length). */
class ByteLimit extends Transform {
  exceeded = false;
  private seen = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) {
      this.exceeded = true;
      callback(payloadTooLarge(this.limit));
      return;
    }
    callback(null, chunk);
  }
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT', 'FST_REPLY_FROM_TIMEOUT']);
/** A kept-alive connection the upstream closed just as it was reused: one more try is safe for GET/HEAD. */
const STALE_CONNECTION_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET']);
/** Response headers about the gateway↔upstream connection, not for the client. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'trailer', 'te'];
const PRINTABLE = /^[\x20-\x7e]*$/;

function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (TIMEOUT_CODES.has(code) || code.startsWith('E') || code.startsWith('UND_'))) return code;
    current = current.cause;
  }
  return undefined;
}

/**
 * Forwards a request to its upstream with @fastify/reply-from (undici, pooled keep-alive
 * connections), streaming the body both ways. It sets the identity and tracing headers, maps
 * connection failures to 502 `gateway.upstream_unavailable` and time-outs to 504
 * `gateway.upstream_timeout`, and passes every upstream answer (4xx/5xx included) through unchanged.
 * Nothing is retried except a GET/HEAD whose kept-alive connection turned out closed.
 */
export class UpstreamProxy {
  private readonly timeoutMs: number;
  private readonly bodyLimitBytes: number;
  private readonly metrics: GatewayMetrics;

  private readonly hooks: FastifyReplyFromHooks;

  constructor(options: { timeoutMs: number; bodyLimitBytes: number; metrics: GatewayMetrics }) {
    this.timeoutMs = options.timeoutMs;
    this.bodyLimitBytes = options.bodyLimitBytes;
    this.metrics = options.metrics;
    // reply-from types its hooks for every server flavour (HTTP/2 too); the gateway serves HTTP/1 only.
    this.hooks = {
      timeout: this.timeoutMs,
      rewriteRequestHeaders: this.requestHeaders,
      rewriteHeaders: this.responseHeaders,
      onResponse: this.onResponse,
      onError: this.onError,
      retryDelay: this.retryDelay,
    } as unknown as FastifyReplyFromHooks;
  }

  /**
   * The content-type parser of proxied routes: the body stays a stream (never parsed or buffered);
   * a declared length over the limit is refused before anything is read, an undeclared one is cut
   * off when it passes the limit.
   */
  readonly passBody = (request: FastifyRequest, payload: Readable, done: (error: Error | null, body?: unknown) => void): void => {
    const declared = request.headers['content-length'];
    if (declared !== undefined) {
      if (Number(declared) > this.bodyLimitBytes) {
        done(payloadTooLarge(this.bodyLimitBytes));
        return;
      }
      done(null, payload);
      return;
    }
    // Not `pipeline`: it would destroy the request (and its socket) on overflow, leaving no way to answer 413.
    const limited = new ByteLimit(this.bodyLimitBytes);
    // The overflow can happen before the request is forwarded; the forwarding then fails and answers 413.
    limited.on('error', () => {});
    payload.on('error', (error) => limited.destroy(error));
    payload.pipe(limited);
    done(null, limited);
  };

  /** Sends `request` to `base` + its own path and query; the reply follows. */
  forward(request: FastifyRequest, reply: FastifyReply, base: string): FastifyReply {
    request.proxied!.sentAt = performance.now();
    try {
      return reply.from(base + request.url, this.hooks);
    } catch {
      // reply-from refuses URLs with malformed escapes or `..` segments before sending anything.
      throw unforwardableUrl();
    }
  }

  private readonly requestHeaders = (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders => {
    const proxied = request.proxied!;
    delete headers['x-user-id'];
    delete headers['x-username'];
    delete headers['forwarded'];
    delete headers['x-real-ip'];
    if (proxied.user) {
      headers['x-user-id'] = proxied.user.id;
      if (proxied.user.username !== undefined && PRINTABLE.test(proxied.user.username)) headers['x-username'] = proxied.user.username;
    }
    headers['x-request-id'] = request.id;
    headers['x-forwarded-for'] = proxied.client.forwardedFor;
    headers['x-forwarded-proto'] = proxied.client.proto;
    if (proxied.client.host === undefined) delete headers['x-forwarded-host'];
    else headers['x-forwarded-host'] = proxied.client.host;
    return headers;
  };

  private readonly responseHeaders = (headers: IncomingHttpHeaders): IncomingHttpHeaders => {
    for (const name of HOP_BY_HOP) delete headers[name];
    return headers;
  };

  private readonly onResponse = (request: FastifyRequest, reply: FastifyReply, response: { stream: Readable }): void => {
    const proxied = request.proxied!;
    this.metrics.upstreamDuration.observe(
      { service: proxied.route.service, status: String(reply.statusCode) },
      (performance.now() - proxied.sentAt) / 1000,
    );
    void reply.send(response.stream);
  };

  private readonly onError = (reply: FastifyReply, { error }: { error: Error }): void => {
    const request = reply.request;
    const service = request.proxied!.route.service;
    if (request.body instanceof ByteLimit && request.body.exceeded) {
      // The rest of the body is still on the wire; closing is cheaper than reading it.
      reply.header('connection', 'close');
      void reply.send(payloadTooLarge(this.bodyLimitBytes));
      return;
    }
    const code = errorCode(error) ?? (error as { code?: string }).code;
    if (code !== undefined && TIMEOUT_CODES.has(code)) {
      this.metrics.upstreamFailures.inc({ service, kind: 'timeout' });
      void reply.send(upstreamTimeout(service, error));
      return;
    }
    this.metrics.upstreamFailures.inc({ service, kind: 'unavailable' });
    void reply.send(upstreamUnavailable(service, error));
  };

  private readonly retryDelay = ({ err, req, attempt }: { err: Error | null; req: { method?: string }; attempt: number }): number | null => {
    if (attempt > 0 || !err || (req.method !== 'GET' && req.method !== 'HEAD')) return null;
    const code = errorCode(err);
    return code !== undefined && STALE_CONNECTION_CODES.has(code) ? 1 : null;
  };
}
