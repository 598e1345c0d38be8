import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import type { Logger } from '../logging/index.ts';
import { installAuth, type KeySource } from './auth.ts';
import { installDocs, type DocsOptions } from './docs.ts';
import { installErrorHandling } from './error-handler.ts';
import { installHealth, type ReadinessCheck } from './health.ts';
import { installMetrics } from './metrics.ts';
import { REQUEST_ID_HEADER, installRequestContext, requestIdFrom } from './request-context.ts';
import type { Shutdown } from './shutdown.ts';
import { installTextGuard } from './text-guard.ts';

/** A service's Fastify instance, typed by the zod type provider. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

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
}

/**
 * One call that builds a service's Fastify app with every shared default: zod validation and
 * serialisation, request ids and correlation context, the error handler, `/docs`, `/health/*`,
 * `/metrics`, body limit and (unless `auth: false`) `app.authenticate`. Register the service's routes
 * on the result; the app does not listen (tests `inject`).
 */
export async function createServiceApp(options: ServiceAppOptions): Promise<App> {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // Our own onResponse hook logs one line per request, with the correlation id.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? 1024 * 1024,
    requestIdHeader: false,
    genReqId: (request) => requestIdFrom(request.headers[REQUEST_ID_HEADER]),
    // The gateway proxies; trust X-Forwarded-For from loopback only.
    trustProxy: '127.0.0.1,::1',
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  installRequestContext(app);
  closeConnectionsWhenClosing(app);
  installErrorHandling(app);
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
  installMetrics(app, options.name, options.metricsRegistry);
  if (options.auth) installAuth(app, options.auth);
  return app;
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
