import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

/** A readiness check: resolves when the dependency is usable, rejects (or times out) when not. */
export type ReadinessCheck = () => Promise<unknown>;

const CheckResult = z.object({ status: z.enum(['up', 'down']), error: z.string().optional(), ms: z.number() });
const Readiness = z.object({ status: z.enum(['ready', 'not_ready']), checks: z.record(z.string(), CheckResult) });
export type Readiness = z.infer<typeof Readiness>;

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<z.infer<typeof CheckResult>> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { status: 'up', ms: Math.round(performance.now() - started) };
  } catch (error) {
    return { status: 'down', error: error instanceof Error ? error.message : String(error), ms: Math.round(performance.now() - started) };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check in parallel, each bounded by `timeoutMs`. */
export async function checkReadiness(checks: Record<string, ReadinessCheck>, timeoutMs = 2_000): Promise<Readiness> {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((name) => runCheck(checks[name]!, timeoutMs)));
  const byName = Object.fromEntries(names.map((name, i) => [name, results[i]!]));
  return { status: results.every((r) => r.status === 'up') ? 'ready' : 'not_ready', checks: byName };
}

/** `GET /health/live` (the process answers) and `GET /health/ready` (its own dependencies answer). */
export function installHealth(app: FastifyInstance, checks: Record<string, ReadinessCheck>): void {
  app.get('/health/live', { schema: { tags: ['health'], response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));
  app.get('/health/ready', { schema: { tags: ['health'], response: { 200: Readiness, 503: Readiness } } }, async (_request, reply) => {
    const readiness = await checkReadiness(checks);
    return reply.status(readiness.status === 'ready' ? 200 : 503).send(readiness);
  });
}
