import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

/** What a stub upstream saw of one request (it answers with this, so tests see what the gateway forwarded). */
export interface Echo {
  service: string;
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  bodyLength: number;
  body: string;
}

/** A stand-in for an upstream service, on a real port. */
export interface StubUpstream {
  url: string;
  /** Requests answered by the echo routes, by path (without the query). */
  hits: Map<string, number>;
  /** Every request target received, in order (404s included). */
  received: string[];
  /** Makes `/health/ready` answer 200 (`true`) or 503. */
  setReady(ready: boolean): void;
  close(): Promise<void>;
}

/**
 * Starts a small Fastify server standing in for an upstream service. It answers:
 * - `GET /health/ready`: 200 or 503 (see `setReady`);
 * - `GET /docs/json`: `docs` (404 without);
 * - any path ending in `/status/<code>`: that status with a JSON error body and an `x-stub` header;
 * - any path ending in `/slow`: 200 after `slowMs` (the gateway should give up first);
 * - anything else: an {@link Echo} of the request; with `only`, just the paths under those prefixes
 *   are, and the rest is Fastify's 404, as a service's router answers (it decodes the path once, is
 *   case-sensitive and ignores a trailing slash).
 */
export async function startStubUpstream(name: string, options: { docs?: object; slowMs?: number; only?: readonly string[] } = {}): Promise<StubUpstream> {
  const app: FastifyInstance = Fastify({ logger: false, forceCloseConnections: true, routerOptions: { ignoreTrailingSlash: true } });
  const hits = new Map<string, number>();
  const received: string[] = [];
  app.addHook('onRequest', (request, _reply, done) => {
    received.push(request.url);
    done();
  });
  let ready = true;
  const timers = new Set<NodeJS.Timeout>();
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 * 1024 }, (_request, body, done) => done(null, body));
  app.get('/health/ready', async (_request, reply) => reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: {} }));
  app.get('/docs/json', async (_request, reply) => (options.docs ? reply.send(options.docs) : reply.status(404).send({ error: { code: 'no_docs' } })));
  const echo = async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const status = /\/status\/(\d{3})$/.exec(path);
    if (status) {
      return reply
        .status(Number(status[1]))
        .header('x-stub', name)
        .send({ error: { code: `stub.status_${status[1]}`, message: `${name} answered ${status[1]}` } });
    }
    if (path.endsWith('/slow')) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.slowMs ?? 5_000);
        timers.add(timer);
      });
      return { slow: true };
    }
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const echoed: Echo = { service: name, method: request.method, url: request.url, headers: request.headers, bodyLength: body.length, body: body.toString('utf8') };
    return echoed;
  };
  for (const url of options.only ? options.only.flatMap((prefix) => [prefix, `${prefix}/*`]) : ['/*']) app.all(url, echo);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('stub upstream has no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    hits,
    received,
    setReady: (value) => {
      ready = value;
    },
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      await app.close();
    },
  };
}
