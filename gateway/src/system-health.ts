import { z } from 'zod';
import { serviceUrlVariable, type ServiceDiscovery } from '@civildiy/common/discovery';
import { checkReadiness, type ReadinessCheck } from '@civildiy/common/service';
import { fetchFailureReason } from './fetch-failure.ts';

const InstanceHealth = z.object({
  url: z.string(),
  status: z.enum(['up', 'down']),
  httpStatus: z.number().int().optional(),
  error: z.string().optional(),
  ms: z.number(),
});

const ServiceHealth = z.object({
  status: z.enum(['up', 'down', 'not_configured']).describe('not_configured: no URL is known for it (a service not deployed yet); it does not count as down'),
  instances: z.array(InstanceHealth),
  error: z.string().optional(),
});

/** The body of `GET /health`. */
export const SystemHealth = z.object({
  status: z.enum(['ready', 'not_ready']),
  gateway: z.object({
    status: z.enum(['up', 'down']),
    checks: z.record(z.string(), z.object({ status: z.enum(['up', 'down']), error: z.string().optional(), ms: z.number() })),
  }),
  services: z.record(z.string(), ServiceHealth),
});
export type SystemHealth = z.infer<typeof SystemHealth>;

async function probe(url: string, timeoutMs: number): Promise<z.infer<typeof InstanceHealth>> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    const response = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.ok
      ? { url, status: 'up', httpStatus: response.status, ms: ms() }
      : { url, status: 'down', httpStatus: response.status, error: `/health/ready answered ${response.status}`, ms: ms() };
  } catch (error) {
    return { url, status: 'down', error: fetchFailureReason(error, timeoutMs), ms: ms() };
  }
}

/**
 * `GET /health`: the gateway's own checks and every instance of every routed service's
 * `/health/ready`, all in parallel, each bounded by `timeoutMs`. Ready when the gateway and every
 * configured service (each of its instances) are up.
 */
export async function checkSystemHealth(options: {
  services: readonly string[];
  discovery: ServiceDiscovery;
  own: Record<string, ReadinessCheck>;
  timeoutMs: number;
}): Promise<SystemHealth> {
  const serviceHealth = async (service: string): Promise<z.infer<typeof ServiceHealth>> => {
    let urls: string[];
    try {
      urls = await options.discovery.instances(service);
    } catch (error) {
      return { status: 'down', instances: [], error: error instanceof Error ? error.message : String(error) };
    }
    if (urls.length === 0) return { status: 'not_configured', instances: [], error: `no URL is configured (set ${serviceUrlVariable(service)})` };
    const instances = await Promise.all(urls.map((url) => probe(url, options.timeoutMs)));
    return { status: instances.every((instance) => instance.status === 'up') ? 'up' : 'down', instances };
  };
  const [own, services] = await Promise.all([
    checkReadiness(options.own, options.timeoutMs),
    Promise.all(options.services.map((service) => serviceHealth(service))),
  ]);
  const byService = Object.fromEntries(options.services.map((service, i) => [service, services[i]!]));
  const gatewayUp = own.status === 'ready';
  const allUp = gatewayUp && Object.values(byService).every((health) => health.status !== 'down');
  return {
    status: allUp ? 'ready' : 'not_ready',
    gateway: { status: gatewayUp ? 'up' : 'down', checks: own.checks },
    services: byService,
  };
}
