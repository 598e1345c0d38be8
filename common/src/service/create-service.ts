import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { baseEnv, type BaseEnv } from '../config/index.ts';
import type { Logger } from '../logging/index.ts';
import { installAdmission } from './admission.ts';
import { installAuth, type KeySource } from './auth.ts';
import { installDocs, type DocsOptions } from './docs.ts';
import { answerClientError, installErrorHandling, sendFrameworkError } from './error-handler.ts';
import { JsonDepthScanner, jsonTooDeep } from './json-depth.ts';
import { installHealth, type ReadinessCheck } from './health.ts';
import { installMetrics } from './metrics.ts';
import { REQUEST_ID_HEADER, installRequestContext, requestIdFrom } from './request-context.ts';
import type { Shutdown } from './shutdown.ts';
import { installTextGuard } from './text-guard.ts';

/** A service's Fastify instance, typed by the zod type provider. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

/** How a service takes on requests: admission limits, deadlines, proxies. Defaults: the `HTTP_*` and `TRUSTED_PROXIES` variables of `baseEnv`. */
export interface HttpSettings {
  /** Requests served at once; more wait. */
  maxConcurrent: number;
  /** The longest a request waits for a slot before `503 service.overloaded`, in ms. */
  maxQueueMs: number;
  /** Requests waiting for a slot at most; more are refused at once. */
  maxQueued: number;
  /** The deadline of a request whose caller sets none (`X-Request-Timeout-Ms`), and the cap of those it sets, in ms. */
  requestTimeoutMs: number;
  /** Addresses or CIDR ranges whose `X-Forwarded-For` is believed (`request.ip`). */
  trustedProxies: string[];
}

/** The {@link HttpSettings} of a service's parsed environment (`HTTP_*`, `TRUSTED_PROXIES`). */
export function httpSettings(config: BaseEnv): HttpSettings {
  return {
    maxConcurrent: config.HTTP_MAX_CONCURRENT_REQUESTS,
    maxQueueMs: config.HTTP_MAX_QUEUE_MS,
    maxQueued: config.HTTP_MAX_QUEUED_REQUESTS,
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
    trustedProxies: config.TRUSTED_PROXIES,
  };
}

/** The defaults of {@link HttpSettings}: those of the `HTTP_*` variables in `baseEnv` (one source). */
export const DEFAULT_HTTP_SETTINGS: HttpSettings = httpSettings(baseEnv.parse({}));

/** Options of {@link createServiceApp}. */
export interface ServiceAppOptions {
  /** Service name (logs, metrics, docs title default). */
  name: string;
  logger: Logger;
  /** OpenAPI details. Default title: the service name. */
  docs?: Partial<DocsOptions>;
  /** Where bearer tokens' keys come from; `false` for a service with no protected route. */
  auth: KeySource | false;
  /** The service's own dependencies, checked by `GET /health/ready`. */
  readiness?: Record<string, ReadinessCheck>;
  /** Largest accepted body in bytes. Default 1 MiB; larger → 413. */
  bodyLimitBytes?: number;
  /** Default: prom-client's global registry. */
  metricsRegistry?: Registry;
  /** Log each request at info (default: true; false in benchmarks). */
  logRequests?: boolean;
  /** Admission limits, deadlines and trusted proxies: `httpSettings(config)`. Default {@link DEFAULT_HTTP_SETTINGS}. */
  http?: Partial<HttpSettings>;
  /**
   * Serve `GET /metrics` on this app. Default true. `false` still records the request metrics in the
   * registry, for another listener to serve (the gateway's operations port).
   */
  metricsRoute?: boolean;
  /**
   * Put requests through the service's admission control (`HttpSettings`). Default true. `false`
   * for an app that limits work its own way (the gateway limits per upstream).
   */
  admission?: boolean;
  /** Fastify's `rewriteUrl`: the URL the router sees (the gateway's canonical path). Default: none. */
  rewriteUrl?: (request: RawRequestDefaultExpression) => string;
}

/**
 * One call that builds a service's Fastify app with every shared default: zod validation and
 * serialisation, request ids, correlation context and deadlines, admission control (503 when
 * saturated), the error handler (also for what Node's parser and Fastify's router refuse), JSON depth
 * and text guards, `/docs`, `/health/*`, `/metrics`, body limit and (unless `auth: false`)
 * `app.authenticate`. Register the service's routes on the result; the app does not listen (tests
 * `inject`).
 */
export async function createServiceApp(options: ServiceAppOptions): Promise<App> {
  const http: HttpSettings = { ...DEFAULT_HTTP_SETTINGS, ...options.http };
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // Our own onResponse hook logs one line per request, with the correlation id.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 1024 * 1024,
    requestIdHeader: false,
    genReqId: (request) => requestIdFrom(request.headers[REQUEST_ID_HEADER]),
    // Only the gateway's X-Forwarded-For is believed: anyone else could pick their own address.
    trustProxy: http.trustedProxies,
    routerOptions: { ignoreTrailingSlash: true },
    frameworkErrors: sendFrameworkError,
    clientErrorHandler: answerClientError,
    ...(options.rewriteUrl ? { rewriteUrl: options.rewriteUrl } : {}),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  installRequestContext(app, http.requestTimeoutMs);
  if (options.admission ?? true) installAdmission(app, http, options.metricsRegistry);
  closeConnectionsWhenClosing(app);
  installErrorHandling(app);
  installJsonParser(app);
  installTextGuard(app);
  if (options.logRequests ?? true) {
    app.addHook('onResponse', (request, reply, done) => {
      const fields = { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) };
      if (reply.statusCode >= 500) request.log.error(fields, 'request failed');
      else if (isProbe(request.url)) request.log.debug(fields, 'probe');
      else request.log.info(fields, 'request');
      done();
    });
  }
  await installDocs(app, { title: options.docs?.title ?? options.name, ...options.docs });
  installHealth(app, options.readiness ?? {});
  installMetrics(app, options.name, options.metricsRegistry, { route: options.metricsRoute ?? true });
  if (options.auth) installAuth(app, options.auth);
  return app;
}

/**
 * JSON bodies are measured for depth before they are parsed (400 `json_too_deep` past
 * `MAX_JSON_DEPTH`), then parsed by Fastify's own parser (prototype poisoning refused).
 */
function installJsonParser(app: App): void {
  const parse = app.getDefaultJsonParser('error', 'ignore');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (!new JsonDepthScanner().push(text)) {
      done(jsonTooDeep(), undefined);
      return;
    }
    parse(request, text, done);
  });
}

/** Health checks and metric scrapes arrive every few seconds; they are logged at debug only. */
function isProbe(url: string): boolean {
  return url.startsWith('/health/') || url === '/metrics';
}

/**
 * Answers sent while the app closes carry `Connection: close`. Without it a keep-alive client whose
 * call was in flight at SIGTERM keeps its socket open after the answer, and `close()` waits for the
 * keep-alive timeout instead of returning.
 */
function closeConnectionsWhenClosing(app: App): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  // Callback style: an async hook would cost every answer a promise.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
}

/** Listens on `port` (0 = any) and registers the server as the first thing to close on shutdown. */
export async function listen(app: App, options: { port: number; host: string; shutdown?: Shutdown }): Promise<string> {
  const address = await app.listen({ port: options.port, host: options.host });
  options.shutdown?.add('http server', () => app.close());
  return address;
}
