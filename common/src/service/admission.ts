import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, Gauge, register as globalRegistry, type Registry } from 'prom-client';
import { currentDeadline } from '../context/index.ts';
import { ServiceUnavailableError } from '../errors/index.ts';
import { AdaptiveLimit, type AdaptiveLimitOptions } from './adaptive-limit.ts';
import { reuseMetric } from './metrics.ts';

/** Limits of {@link AdmissionControl}. */
export interface AdmissionOptions {
  /** Requests served at once; more wait for a slot. With `adaptive`, the most the limit may grow to. */
  maxConcurrent: number;
  /** The longest a request waits for a slot (shorter when its deadline comes first) before `503`. */
  maxQueueMs: number;
  /** Requests waiting at most; one more is refused at once. */
  maxQueued: number;
  /** Follow the latency of the requests (see {@link AdaptiveLimit}) instead of a fixed `maxConcurrent`. */
  adaptive?: Omit<AdaptiveLimitOptions, 'max'>;
}

/** How a request that held a slot ended, for an adaptive limit. */
export interface SlotOutcome {
  /** From admission to the end, in ms. */
  latencyMs: number;
  /** It failed for load: refused by the upstream (503), timed out, or could not connect. */
  overloaded: boolean;
}

/** Why a request was refused. */
export type ShedReason = 'queue_full' | 'queue_timeout' | 'deadline';

interface Waiter {
  admit: () => void;
  timer: NodeJS.Timeout;
  settled: boolean;
}

/**
 * A concurrency limit with a short, bounded wait: at most `maxConcurrent` requests run; the next
 * `maxQueued` wait in arrival order for at most `maxQueueMs` (or until their deadline, if sooner);
 * everything else is refused at once with `503 service.overloaded` and `Retry-After`.
 *
 * Why a limit on requests in progress rather than on event-loop delay: a service saturates on its
 * database long before its event loop lags (an embedded database serves one statement at a time),
 * and then the only visible symptom is requests piling up. Refusing what cannot start soon keeps
 * the latency of the accepted requests bounded and tells the others at once to come back later,
 * instead of answering everybody late (or after the client gave up).
 */
export class AdmissionControl {
  private active = 0;
  private readonly waiting: Waiter[] = [];
  private head = 0;
  private readonly adaptive: AdaptiveLimit | undefined;

  constructor(private readonly options: AdmissionOptions) {
    this.adaptive = options.adaptive ? new AdaptiveLimit({ ...options.adaptive, max: options.maxConcurrent }) : undefined;
  }

  /** Requests that may run at once now. */
  get limit(): number {
    return this.adaptive?.current ?? this.options.maxConcurrent;
  }

  /** Requests holding a slot now. */
  get running(): number {
    return this.active;
  }

  /** Requests waiting for a slot now. */
  get queued(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Takes a slot: resolves `undefined` when the request may run (it must call {@link release}
   * exactly once afterwards), or the reason it is refused.
   */
  acquire(deadline: number | undefined): ShedReason | undefined | Promise<ShedReason | undefined> {
    if (this.active < this.limit && this.queued === 0) {
      this.active++;
      return undefined;
    }
    if (this.queued >= this.options.maxQueued) return 'queue_full';
    const untilDeadline = deadline === undefined ? Number.POSITIVE_INFINITY : deadline - Date.now();
    if (untilDeadline <= 0) return 'deadline';
    const reason: ShedReason = untilDeadline < this.options.maxQueueMs ? 'deadline' : 'queue_timeout';
    return new Promise((resolve) => {
      const waiter: Waiter = {
        settled: false,
        admit: () => resolve(undefined),
        timer: setTimeout(() => {
          waiter.settled = true;
          resolve(reason);
        }, Math.min(untilDeadline, this.options.maxQueueMs)),
      };
      this.waiting.push(waiter);
    });
  }

  /**
   * Gives a slot back (with how its request went, for an adaptive limit): the oldest waiters still
   * waiting get the free slots.
   */
  release(outcome?: SlotOutcome): void {
    this.active--;
    if (outcome && this.adaptive) this.adaptive.record(outcome.latencyMs, outcome.overloaded, this.active);
    while (this.active < this.limit && this.head < this.waiting.length) {
      const next = this.waiting[this.head]!;
      this.head++;
      if (next.settled) continue;
      next.settled = true;
      clearTimeout(next.timer);
      this.active++;
      next.admit();
    }
    this.compact();
  }

  /** Drops the consumed front of the queue once it is most of the array (amortised O(1) dequeue). */
  private compact(): void {
    if (this.head > 1_024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** The refusal a client gets: retrying after a second is safe (see README, "Retries"). */
export function overloaded(reason: ShedReason): ServiceUnavailableError {
  return new ServiceUnavailableError(
    reason === 'deadline' ? 'The request could not start before its deadline' : 'The service is busy; retry shortly',
    'service.overloaded',
    { retryAfterSeconds: 1, details: { reason } },
  );
}

/** The admission controls of each registry, for its gauges (several apps can share one registry). */
const controlsOf = new WeakMap<Registry, Set<AdmissionControl>>();

/** Routes that must answer even when the service is saturated: probes and scrapes. */
function isExempt(request: FastifyRequest): boolean {
  const url = request.url;
  return url.startsWith('/health/') || url === '/metrics';
}

/**
 * Puts every request of `app` (but health probes and `/metrics`) through an {@link AdmissionControl}
 * before its body is read, and counts what it refuses in `civildiy_http_requests_shed_total{reason}`
 * (with `civildiy_http_requests_in_progress` and `civildiy_http_requests_queued` gauges).
 */
export function installAdmission(app: FastifyInstance, options: AdmissionOptions, registry: Registry = globalRegistry): AdmissionControl {
  const admission = new AdmissionControl(options);
  const shed = reuseMetric(
    registry,
    'civildiy_http_requests_shed_total',
    () =>
      new Counter({
        name: 'civildiy_http_requests_shed_total',
        help: 'Requests refused with 503 service.overloaded, by reason (queue_full, queue_timeout, deadline)',
        labelNames: ['reason'] as const,
        registers: [registry],
      }),
  );
  let controls = controlsOf.get(registry);
  if (!controls) {
    controls = new Set();
    controlsOf.set(registry, controls);
  }
  const all = controls;
  reuseMetric(registry, 'civildiy_http_requests_in_progress', () => new Gauge({
    name: 'civildiy_http_requests_in_progress',
    help: 'Requests being served (holding an admission slot)',
    registers: [registry],
    collect() {
      this.set([...all].reduce((sum, control) => sum + control.running, 0));
    },
  }));
  reuseMetric(registry, 'civildiy_http_requests_queued', () => new Gauge({
    name: 'civildiy_http_requests_queued',
    help: 'Requests waiting for an admission slot',
    registers: [registry],
    collect() {
      this.set([...all].reduce((sum, control) => sum + control.queued, 0));
    },
  }));
  all.add(admission);
  app.addHook('onClose', (_instance, done) => {
    all.delete(admission);
    done();
  });

  app.addHook('onRequest', (request, reply, done) => {
    if (isExempt(request)) {
      done();
      return;
    }
    const admitted = (reason: ShedReason | undefined) => {
      if (reason !== undefined) {
        shed.inc({ reason });
        done(overloaded(reason));
        return;
      }
      const response = reply.raw;
      if (response.closed || response.destroyed) {
        // The client left while the request waited: nobody to serve.
        admission.release();
        return;
      }
      // 'close' fires once the answer is sent or the connection is gone, whichever comes first.
      response.once('close', () => admission.release());
      done();
    };
    const outcome = admission.acquire(currentDeadline());
    if (outcome instanceof Promise) void outcome.then(admitted);
    else admitted(outcome);
  });
  return admission;
}
