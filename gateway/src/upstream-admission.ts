import type { FastifyReply } from 'fastify';
import { AdmissionControl, overloaded, type AdmissionOptions } from '@civildiy/common/service';
import type { GatewayMetrics } from './gateway-metrics.ts';

/**
 * Admission per upstream instance: an adaptive limit on the requests in flight to one instance (up
 * to `maxConcurrent`, as many as the gateway keeps connections to it; see `AdaptiveLimit`), the next
 * ones waiting a bounded time, the rest refused at once with `503 service.overloaded` and
 * `Retry-After`.
 *
 * Without it, requests beyond the connection pool waited in undici's queue with no time limit (its
 * time-outs only start once a request is sent), so at twice the sustainable rate the gateway
 * answered after 20 s or more, and some requests reached the service after their client had been
 * answered 504. Per instance, so one saturated service cannot take the slots of the others.
 */
export class UpstreamAdmission {
  private readonly controls = new Map<string, AdmissionControl>();

  constructor(
    private readonly options: AdmissionOptions,
    private readonly metrics: GatewayMetrics,
  ) {}

  /**
   * Waits for a slot of `service`'s instance `base` within the request's `deadline`; the slot is
   * given back when the answer is sent or the client goes away.
   * @throws ServiceUnavailableError 503 `service.overloaded` when no slot frees in time.
   */
  async enter(service: string, base: string, deadline: number | undefined, reply: FastifyReply): Promise<void> {
    let control = this.controls.get(base);
    if (!control) {
      control = new AdmissionControl(this.options);
      this.controls.set(base, control);
    }
    const refused = await control.acquire(deadline);
    if (refused !== undefined) {
      this.metrics.shed.inc({ service, reason: refused });
      throw overloaded(refused);
    }
    const slot = control;
    const response = reply.raw;
    if (response.closed || response.destroyed) {
      slot.release();
      return;
    }
    const admittedAt = performance.now();
    response.once('close', () => {
      const status = reply.statusCode;
      slot.release({ latencyMs: performance.now() - admittedAt, overloaded: status === 502 || status === 503 || status === 504 || !response.writableFinished });
    });
  }
}
