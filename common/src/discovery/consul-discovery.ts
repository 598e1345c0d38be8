import type { Logger } from '../logging/index.ts';
import { computeBackoffMs } from '../tasks/backoff.ts';
import type { ConsulClient, ConsulServiceInstance } from './consul-client.ts';
import type { ServiceDiscovery } from './service-discovery.ts';
import { ServiceNotFoundError } from './service-not-found-error.ts';
import { sleepUnlessAborted } from './sleep.ts';

/** Options of {@link ConsulDiscovery}. */
export interface ConsulDiscoveryOptions {
  client: ConsulClient;
  /** Services watched from the start (the gateway's upstreams); any other is watched from its first `resolve` or `instances`. */
  services?: readonly string[];
  /** The longest one blocking query waits for a change (Consul's `wait`; ms). Default 60,000. */
  waitMs?: number;
  /** How long `resolve`/`instances` wait for a service's first answer from Consul (ms). Default 5,000. */
  firstAnswerTimeoutMs?: number;
  /** Retries after a failed query: exponential from `delayMs` to `maxDelayMs`, with jitter. Default 250 ms to 10 s. */
  retry?: { delayMs: number; maxDelayMs: number };
  /**
   * When a service's health churns, its queries are limited to a burst of 2, then one per this long
   * (a token bucket, as Consul's blocking-query guide advises; ms). Default 1,000.
   */
  minQueryIntervalMs?: number;
  logger?: Logger;
}

/** The base URL of an instance: `http://address:port` (an IPv6 address in brackets). */
export function instanceUrl(instance: Pick<ConsulServiceInstance, 'address' | 'port'>): string {
  const host = instance.address.includes(':') && !instance.address.startsWith('[') ? `[${instance.address}]` : instance.address;
  return `http://${host}:${instance.port}`;
}

/** One service's healthy instances, kept current by a loop of blocking queries. */
class ServiceWatch {
  urls: string[] = [];
  answered = false;
  lastError: Error | undefined;
  readonly firstAnswer: Promise<void>;
  readonly running: Promise<void>;
  private settleFirst!: () => void;
  private next = 0;
  private index = 0;
  private tokens = 2;
  private refilledAt = Date.now();

  constructor(
    readonly service: string,
    private readonly options: Required<Omit<ConsulDiscoveryOptions, 'services' | 'logger'>> & { logger: Logger | undefined },
    private readonly signal: AbortSignal,
  ) {
    this.firstAnswer = new Promise((resolve) => (this.settleFirst = resolve));
    this.running = this.loop();
  }

  pick(): string | undefined {
    if (this.urls.length === 0) return undefined;
    const url = this.urls[this.next % this.urls.length]!;
    this.next = (this.next + 1) % this.urls.length;
    return url;
  }

  private async loop(): Promise<void> {
    const { client, waitMs, retry, logger } = this.options;
    let failures = 0;
    while (!this.signal.aborted) {
      // After a failure the backoff has spaced the queries already.
      if (failures === 0) await this.takeToken();
      if (this.signal.aborted) break;
      try {
        const answer = await client.healthyInstances(this.service, { index: this.index, waitMs, signal: this.signal });
        // Consul's rules for blocking queries: an index that goes backwards restarts the loop (0: answer
        // at once), and an index is at least 1 so that the next query blocks.
        this.index = answer.index < this.index ? 0 : Math.max(1, answer.index);
        this.update(answer.instances.map(instanceUrl));
        if (failures > 0) logger?.info({ service: this.service, instances: this.urls }, `consul: watching ${this.service} again`);
        failures = 0;
        this.lastError = undefined;
        this.answered = true;
        this.settleFirst();
      } catch (error) {
        if (this.signal.aborted) break;
        failures++;
        this.lastError = error instanceof Error ? error : new Error(String(error));
        this.settleFirst();
        const delayMs = computeBackoffMs({ type: 'exponential', delayMs: retry.delayMs, maxDelayMs: retry.maxDelayMs, jitter: 0.5 }, failures);
        const level = failures === 1 ? 'warn' : 'debug';
        logger?.[level](
          { service: this.service, err: error, failures, retryInMs: delayMs, instances: this.urls },
          `consul: cannot watch ${this.service} (keeping its ${this.urls.length} last known instance(s)); trying again in ${delayMs} ms`,
        );
        this.index = 0;
        await sleepUnlessAborted(delayMs, this.signal);
      }
    }
  }

  private update(urls: string[]): void {
    const sorted = [...new Set(urls)].sort();
    if (sorted.length === this.urls.length && sorted.every((url, i) => url === this.urls[i])) return;
    this.urls = sorted;
    this.options.logger?.info({ service: this.service, instances: sorted }, `consul: ${this.service} has ${sorted.length} healthy instance(s)`);
  }

  /** Burst of 2, then one query per `minQueryIntervalMs`: a busy loop degrades into polling. */
  private async takeToken(): Promise<void> {
    const interval = this.options.minQueryIntervalMs;
    const now = Date.now();
    this.tokens = Math.min(2, this.tokens + (now - this.refilledAt) / interval);
    this.refilledAt = now;
    if (this.tokens < 1) {
      await sleepUnlessAborted(Math.ceil((1 - this.tokens) * interval), this.signal);
      this.tokens = Math.min(2, this.tokens + (Date.now() - this.refilledAt) / interval);
      this.refilledAt = Date.now();
    }
    this.tokens = Math.max(0, this.tokens - 1);
  }
}

/**
 * Service discovery through Consul: for each service it keeps the instances whose checks all pass
 * current with blocking queries on `/v1/health/service/<name>?passing=true`, and answers `resolve`
 * and `instances` from memory (round-robin over the healthy instances). A service is watched from
 * the start when it is in `services`, else from the first time it is asked for (that first call waits
 * up to `firstAnswerTimeoutMs` for Consul's answer).
 *
 * When Consul fails, a watch keeps the instances it last knew and tries again with exponential
 * backoff; an instance that turns critical or deregisters is dropped as soon as Consul's blocking
 * query returns. `close()` stops every watch.
 */
export class ConsulDiscovery implements ServiceDiscovery {
  private readonly watches = new Map<string, ServiceWatch>();
  private readonly abort = new AbortController();
  private readonly settings: ConstructorParameters<typeof ServiceWatch>[1];

  constructor(options: ConsulDiscoveryOptions) {
    this.settings = {
      client: options.client,
      waitMs: options.waitMs ?? 60_000,
      firstAnswerTimeoutMs: options.firstAnswerTimeoutMs ?? 5_000,
      retry: options.retry ?? { delayMs: 250, maxDelayMs: 10_000 },
      minQueryIntervalMs: options.minQueryIntervalMs ?? 1_000,
      logger: options.logger,
    };
    for (const service of options.services ?? []) this.watch(service);
  }

  /** {@inheritDoc ServiceDiscovery.resolve} */
  async resolve(service: string): Promise<string> {
    const watch = await this.answered(service);
    const url = watch.pick();
    if (url !== undefined) return url;
    throw new ServiceNotFoundError(
      service,
      watch.lastError ? `No healthy instance of ${service} is known: ${watch.lastError.message}` : `No healthy instance of ${service} is registered in Consul`,
    );
  }

  /** {@inheritDoc ServiceDiscovery.instances} */
  async instances(service: string): Promise<string[]> {
    return [...(await this.answered(service)).urls];
  }

  /** Stops every watch (an open blocking query is abandoned). Idempotent. */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.all([...this.watches.values()].map((watch) => watch.running));
  }

  private watch(service: string): ServiceWatch {
    let watch = this.watches.get(service);
    if (!watch) {
      watch = new ServiceWatch(service, this.settings, this.abort.signal);
      this.watches.set(service, watch);
    }
    return watch;
  }

  /** The service's watch, once it has had a first answer (or a first failure, or the wait ran out). */
  private async answered(service: string): Promise<ServiceWatch> {
    const watch = this.watch(service);
    if (watch.answered || watch.lastError || this.abort.signal.aborted) return watch;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([watch.firstAnswer, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.settings.firstAnswerTimeoutMs)))]);
    clearTimeout(timer);
    return watch;
  }
}
