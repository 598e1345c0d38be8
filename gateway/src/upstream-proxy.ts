import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import { REQUEST_TIMEOUT_HEADER, remainingMs, type AppError } from '@civildiy/common';
import { JsonDepthScanner, jsonTooDeep, type AuthenticatedUser } from '@civildiy/common/service';
import type { ClientOrigin } from './client-address.ts';
import { invalidPath, payloadTooLarge, upstreamTimeout, upstreamUnavailable } from './gateway-errors.ts';
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

/**
 * A pass-through that stops a streamed body the gateway refuses: more than `limit` bytes (a body
 * without Content-Length), or JSON nested deeper than the services accept (checked as it streams,
 * with no buffering and no recursion). `refusal` is the answer to give instead.
 */
class BodyGuard extends Transform {
  refusal: AppError | undefined;
  private seen = 0;

  constructor(
    private readonly limit: number,
    private readonly depth: JsonDepthScanner | undefined,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) this.refusal = payloadTooLarge(this.limit);
    else if (this.depth && !this.depth.push(chunk)) this.refusal = jsonTooDeep();
    if (this.refusal) {
      callback(this.refusal);
      return;
    }
    callback(null, chunk);
  }
}

/** `application/json` and `application/<anything>+json`. */
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT', 'FST_REPLY_FROM_TIMEOUT']);
/** A kept-alive connection the upstream closed just as it was reused: one more try is safe for GET/HEAD. */
const STALE_CONNECTION_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET']);
/** Response headers about the gateway↔upstream connection, not for the client. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'trailer', 'te'];
const PRINTABLE = /^[\x20-\x7e]*$/;
/** Kept back from the deadline the upstream is given, for its answer to travel back. */
const DEADLINE_MARGIN_MS = 100;

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
    if (declared !== undefined && Number(declared) > this.bodyLimitBytes) {
      done(payloadTooLarge(this.bodyLimitBytes));
      return;
    }
    const json = JSON_TYPE.test(request.headers['content-type'] ?? '');
    if (declared !== undefined && !json) {
      done(null, payload);
      return;
    }
    // Not `pipeline`: it would destroy the request (and its socket) on overflow, leaving no way to answer 413.
    const limited = new BodyGuard(this.bodyLimitBytes, json ? new JsonDepthScanner() : undefined);
    // The overflow can happen before the request is forwarded; the forwarding then fails and answers 413.
    limited.on('error', () => {});
    payload.on('error', (error) => limited.destroy(error));
    payload.pipe(limited);
    done(null, limited);
  };

  /**
   * Sends `request` to `base` + `path` (its canonical path) and its query string exactly as the
   * client sent it; the reply follows. The query is left to reply-from, which copies it from the
   * request when the URL it is given has none (it never parses or re-encodes it that way).
   */
  forward(request: FastifyRequest, reply: FastifyReply, base: string, path: string): FastifyReply {
    request.proxied!.sentAt = performance.now();
    const remaining = Math.min(remainingMs(), this.timeoutMs);
    if (remaining <= 0) throw upstreamTimeout(request.proxied!.route.service);
    try {
      // The upstream's own time-out is what is left of the request's deadline.
      return reply.from(base + path, remaining === this.timeoutMs ? this.hooks : { ...this.hooks, timeout: Math.ceil(remaining) });
    } catch {
      // reply-from refuses a path with a segment that starts or ends with `..` (`/posts/..x`), before sending anything.
      throw invalidPath('a segment that starts or ends with ..');
    }
  }

  private readonly requestHeaders = (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders => {
    const proxied = request.proxied!;
    delete headers['x-user-id'];
    delete headers['x-username'];
    delete headers['forwarded'];
    delete headers['x-real-ip'];
    // The gateway's own server already answered the client's `Expect: 100-continue`; undici refuses
    // to send the header at all (every such request was a 502, e.g. curl's uploads over 1 MB).
    delete headers['expect'];
    if (proxied.user) {
      headers['x-user-id'] = proxied.user.id;
      if (proxied.user.username !== undefined && PRINTABLE.test(proxied.user.username)) headers['x-username'] = proxied.user.username;
    }
    headers['x-request-id'] = request.id;
    // What is left of the deadline, less a margin for the answer's way back: the service gives up
    // (503, nothing committed) just before the gateway would answer 504.
    const left = Math.min(remainingMs(), this.timeoutMs);
    headers[REQUEST_TIMEOUT_HEADER] = String(Math.max(0, Math.floor(left - Math.min(DEADLINE_MARGIN_MS, left / 10))));
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
    if (request.body instanceof BodyGuard && request.body.refusal) {
      // The rest of the body is still on the wire; closing is cheaper than reading it.
      reply.header('connection', 'close');
      void reply.send(request.body.refusal);
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
