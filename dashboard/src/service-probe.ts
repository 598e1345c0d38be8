import { z } from 'zod';
import type { Logger } from '@civildiy/common';
import { serviceUrlVariable, type ServiceDiscovery } from '@civildiy/common/discovery';
import type { ServiceInfo } from '@civildiy/common/topology';
import type { Light, ServiceStatus } from './contract.ts';
import type { MetricWindow } from './metric-window.ts';
import { fetchFailureReason, scrapeMetrics, type Sample } from './metrics-scrape.ts';
import type { RestartRecord, RestartTracker } from './restart-tracker.ts';

/** A restart this recent makes a service amber. */
const RECENT_RESTART_MS = 10 * 60_000;

/** The body of every service's `GET /health/ready` (see `installHealth` in `@civildiy/common/service`). */
const Readiness = z.object({
  status: z.string(),
  checks: z.record(z.string(), z.object({ status: z.string(), error: z.string().optional() })).default({}),
});

/** Options of {@link ServiceProbe}. */
export interface ServiceProbeOptions {
  /** The services to watch (`SERVICES`). */
  services: readonly ServiceInfo[];
  /** Where their instances run (the static discovery, as the gateway's). */
  discovery: ServiceDiscovery;
  /** Each request's budget (ms). */
  timeoutMs: number;
  /** The gateway's metrics are on this port of its host (`GATEWAY_OPS_PORT`; 0: not scraped). */
  gatewayOpsPort: number;
  restarts: RestartTracker;
  /** Where every scrape goes (the queue, stream and chart figures are computed from it). */
  metrics: MetricWindow;
  logger: Logger;
}

interface Answer {
  ok: boolean;
  error: string | null;
  body?: unknown;
}

/**
 * Probes every instance of every service: `/health/live`, `/health/ready` (the failing checks by
 * name) and `/metrics` (memory, uptime, restarts; the scrape is kept in the metric window), all in
 * parallel and each within `timeoutMs`, so a slow service delays nobody else.
 */
export class ServiceProbe {
  constructor(private readonly options: ServiceProbeOptions) {}

  /** One status per instance of every service, in `SERVICES` order. */
  async probeAll(): Promise<ServiceStatus[]> {
    const perService = await Promise.all(this.options.services.map((service) => this.probeService(service)));
    return perService.flat();
  }

  private async probeService(service: ServiceInfo): Promise<ServiceStatus[]> {
    let urls: string[];
    try {
      urls = await this.options.discovery.instances(service.name);
    } catch (error) {
      return [this.unreachable(service, null, error instanceof Error ? error.message : String(error))];
    }
    if (urls.length === 0) return [this.unreachable(service, null, `no URL is configured (set ${serviceUrlVariable(service.name)})`)];
    return Promise.all(urls.map((url) => this.probeInstance(service, url)));
  }

  private async probeInstance(service: ServiceInfo, url: string): Promise<ServiceStatus> {
    const instance = `${service.name}|${url}`;
    const metricsUrl = this.metricsUrl(service, url);
    const [live, ready, samples] = await Promise.all([
      this.get(`${url}/health/live`),
      this.get(`${url}/health/ready`),
      metricsUrl ? scrapeMetrics(metricsUrl, this.options.timeoutMs).catch(() => undefined) : Promise.resolve(undefined),
    ]);
    const checkedAt = new Date();
    if (samples) this.options.metrics.record(instance, samples, checkedAt.getTime());
    const value = (name: string) => samples?.find((sample: Sample) => sample.name === name)?.value ?? null;
    const startTime = value('process_start_time_seconds');
    const restarts = await this.restartsOf(instance, startTime);
    const failingChecks = live.ok && !ready.ok ? this.failingChecks(ready) : [];
    const restartedLately = restarts.lastRestartAt !== null && checkedAt.getTime() - Date.parse(restarts.lastRestartAt) < RECENT_RESTART_MS;
    const light: Light = !live.ok ? 'red' : !ready.ok || restartedLately ? 'amber' : 'green';
    return {
      name: service.name,
      role: service.role,
      url,
      light,
      live: live.ok,
      ready: ready.ok,
      failingChecks,
      error: live.ok ? null : live.error,
      uptimeSeconds: startTime === null ? null : Math.max(0, Math.round(checkedAt.getTime() / 1000 - startTime)),
      residentMemoryBytes: value('process_resident_memory_bytes'),
      heapUsedBytes: value('nodejs_heap_size_used_bytes'),
      restarts: restarts.restarts,
      lastRestartAt: restarts.lastRestartAt,
      checkedAt: checkedAt.toISOString(),
    };
  }

  private async restartsOf(instance: string, startTime: number | null): Promise<RestartRecord> {
    try {
      return startTime === null ? await this.options.restarts.known(instance) : await this.options.restarts.observe(instance, startTime);
    } catch (error) {
      this.options.logger.warn({ err: error, instance }, 'could not read or record the restarts of a service (Redis)');
      return { restarts: 0, lastRestartAt: null };
    }
  }

  /** The gateway's metrics are on its operations port; mock-providers' on its first (payments) port, which is its URL. */
  private metricsUrl(service: ServiceInfo, url: string): string | undefined {
    if (service.name !== 'gateway') return `${url}/metrics`;
    if (this.options.gatewayOpsPort === 0) return undefined;
    const ops = new URL(url);
    ops.port = String(this.options.gatewayOpsPort);
    return `${ops.origin}/metrics`;
  }

  private failingChecks(ready: Answer): { name: string; error: string }[] {
    const parsed = Readiness.safeParse(ready.body);
    const failing = parsed.success
      ? Object.entries(parsed.data.checks)
          .filter(([, check]) => check.status !== 'up')
          .map(([name, check]) => ({ name, error: check.error ?? check.status }))
      : [];
    return failing.length > 0 ? failing : [{ name: 'ready', error: ready.error ?? 'not ready' }];
  }

  private async get(url: string): Promise<Answer> {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(this.options.timeoutMs) });
      const text = await response.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      return response.ok ? { ok: true, error: null, body } : { ok: false, error: `${new URL(url).pathname} answered ${response.status}`, body };
    } catch (error) {
      return { ok: false, error: fetchFailureReason(error, this.options.timeoutMs) };
    }
  }

  private unreachable(service: ServiceInfo, url: string | null, error: string): ServiceStatus {
    return {
      name: service.name,
      role: service.role,
      url,
      light: 'red',
      live: false,
      ready: false,
      failingChecks: [],
      error,
      uptimeSeconds: null,
      residentMemoryBytes: null,
      heapUsedBytes: null,
      restarts: 0,
      lastRestartAt: null,
      checkedAt: new Date().toISOString(),
    };
  }
}
