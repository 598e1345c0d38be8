import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import type { RuntimeEnv } from '../config/index.ts';
import { ConsulClient, consulDuration, type ConsulServiceRegistration } from '../discovery/consul-client.ts';
import { sleepUnlessAborted } from '../discovery/sleep.ts';
import type { Logger } from '../logging/index.ts';
import type { App, Shutdown } from '../service/index.ts';
import { computeBackoffMs } from '../tasks/backoff.ts';
import { GATEWAY_ROUTES } from '../topology/index.ts';

/** The tag every CivilDIY instance carries in Consul. */
export const CONSUL_TAG = 'civildiy';

/** The path the agent's check calls: the service kit's readiness route. */
const READINESS_PATH = '/health/ready';

/** What {@link consulServiceRegistration} needs to describe one instance. */
export interface InstanceDescription {
  /** The service's name (`posts-service`). */
  service: string;
  /** Where other processes reach it (`SERVICE_ADDRESS`). */
  address: string;
  /** The port it listens on. */
  port: number;
  /** Its version (the `version` of its package.json), as a tag `version=<v>` and in `Meta`. */
  version: string;
  /** How often the agent calls its `/health/ready` (ms). */
  checkIntervalMs: number;
  /** The machine it runs on, part of its ID. Default: the host name. */
  host?: string;
}

/**
 * The agent registration of one service instance: ID `<service>-<host>-<port>` (unique per
 * instance), tags `civildiy`, `version=<v>` and `route=<prefix>` for each gateway route it serves,
 * and an HTTP check of `/health/ready` every `checkIntervalMs` that has the agent deregister the
 * instance after one minute critical (a process that died without deregistering).
 */
export function consulServiceRegistration(instance: InstanceDescription): ConsulServiceRegistration {
  const host = (instance.host ?? hostname()).replace(/[^A-Za-z0-9_.-]/g, '-');
  const id = `${instance.service}-${host}-${instance.port}`;
  const routes = [...new Set(GATEWAY_ROUTES.filter((route) => route.service === instance.service).map((route) => route.prefix))];
  const urlHost = instance.address.includes(':') && !instance.address.startsWith('[') ? `[${instance.address}]` : instance.address;
  return {
    ID: id,
    Name: instance.service,
    Address: instance.address,
    Port: instance.port,
    Tags: [CONSUL_TAG, `version=${instance.version}`, ...routes.map((prefix) => `route=${prefix}`)],
    Meta: { version: instance.version },
    Check: {
      CheckID: `service:${id}`,
      Name: `${instance.service} readiness`,
      HTTP: `http://${urlHost}:${instance.port}${READINESS_PATH}`,
      Method: 'GET',
      Interval: consulDuration(instance.checkIntervalMs),
      // A readiness check is bounded to 2 s per dependency; a check slower than that is a failure.
      Timeout: consulDuration(Math.min(instance.checkIntervalMs, 5_000)),
      DeregisterCriticalServiceAfter: '1m',
    },
  };
}

/** Options of {@link ConsulRegistration}. */
export interface ConsulRegistrationOptions {
  client: ConsulClient;
  registration: ConsulServiceRegistration;
  logger: Logger;
  /** Registration retries: exponential from `delayMs` to `maxDelayMs`, with jitter. Default 500 ms to 30 s. */
  retry?: { delayMs: number; maxDelayMs: number };
  /**
   * Once registered, how often to ask the agent whether it still has the instance, registering it
   * again when not (an agent restarted without its state forgets it; ms). Default 30,000; 0 = never.
   */
  verifyEveryMs?: number;
}

/**
 * Keeps one service instance registered on the local Consul agent: `start()` registers it in the
 * background, retrying with backoff while the agent is unreachable (the service runs meanwhile, logged
 * once at warn); it then checks now and then that the agent still has it. `close()` stops that and
 * deregisters the instance.
 */
export class ConsulRegistration {
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private registered = false;
  private attempted = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: ConsulRegistrationOptions) {}

  /** The instance's ID in Consul. */
  get id(): string {
    return this.options.registration.ID;
  }

  /** Starts registering (once). */
  start(): void {
    this.running ??= this.loop();
  }

  /** Resolves once the agent has accepted the registration (at once when it has). */
  whenRegistered(): Promise<void> {
    if (this.registered) return Promise.resolve();
    return new Promise((resolve) => this.waiters.add(resolve));
  }

  /**
   * Stops the background work and deregisters the instance (when a registration may have reached the
   * agent), within `timeoutMs`. A failure is logged: the agent's check deregisters it a minute after
   * it turns critical.
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.abort.abort();
    await this.running;
    if (!this.attempted) return;
    const { client, logger } = this.options;
    const timeoutMs = options.timeoutMs ?? 2_000;
    try {
      await Promise.race([
        client.deregisterService(this.id),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs).unref()),
      ]);
      logger.info({ consulServiceId: this.id }, 'consul: deregistered');
    } catch (error) {
      logger.warn({ consulServiceId: this.id, err: error }, 'consul: could not deregister; the agent removes the instance a minute after its check turns critical');
    }
  }

  private async loop(): Promise<void> {
    const { client, registration, logger } = this.options;
    const retry = this.options.retry ?? { delayMs: 500, maxDelayMs: 30_000 };
    const verifyEveryMs = this.options.verifyEveryMs ?? 30_000;
    const signal = this.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (this.registered) {
          await sleepUnlessAborted(verifyEveryMs, signal);
          if (signal.aborted) break;
          if (await client.hasService(this.id, { signal })) continue;
          logger.warn({ consulServiceId: this.id }, 'consul: the agent no longer has this instance (restarted?); registering it again');
          this.registered = false;
        }
        this.attempted = true;
        await client.registerService(registration, { signal });
        this.registered = true;
        logger.info(
          { consulServiceId: this.id, address: registration.Address, port: registration.Port, check: registration.Check?.HTTP, consul: client.baseUrl },
          `consul: registered ${registration.Name}${failures > 0 ? ` after ${failures} failed attempt(s)` : ''}`,
        );
        failures = 0;
        for (const resolve of this.waiters) resolve();
        this.waiters.clear();
        if (verifyEveryMs <= 0) break;
      } catch (error) {
        if (signal.aborted) break;
        failures++;
        const delayMs = computeBackoffMs({ type: 'exponential', delayMs: retry.delayMs, maxDelayMs: retry.maxDelayMs, jitter: 0.5 }, failures);
        logger[failures === 1 ? 'warn' : 'debug'](
          { consulServiceId: this.id, consul: client.baseUrl, err: error, failures, retryInMs: delayMs },
          `consul: cannot ${this.registered ? 'reach the agent' : 'register'} (the service runs on; it is not discoverable until then); trying again in ${delayMs} ms`,
        );
        await sleepUnlessAborted(delayMs, signal);
      }
    }
  }
}

/** `SERVICE_ADDRESS`, else `HOST` when it names one address, else the host name. */
export function serviceAddress(config: Pick<RuntimeEnv, 'SERVICE_ADDRESS' | 'HOST'>): string {
  if (config.SERVICE_ADDRESS) return config.SERVICE_ADDRESS.replace(/^\[(.*)\]$/, '$1');
  const wildcard = ['0.0.0.0', '::', '[::]', ''].includes(config.HOST);
  return wildcard ? hostname() : config.HOST;
}

/** The `version` of the package.json in the working folder (a service's workspace, locally and in its image), else `unknown`. */
function packageVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(path.join(process.cwd(), 'package.json'), 'utf8')) as { version?: unknown };
    return typeof manifest.version === 'string' ? manifest.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * With `DISCOVERY=consul`, registers each listening HTTP app that serves `GET /health/ready` (so not
 * the gateway's operations port) on the Consul agent at `CONSUL_HTTP_ADDR`, in the background, and
 * adds a shutdown step that deregisters it; added after the apps' own steps, it runs before them, so
 * the instance leaves Consul before its HTTP server stops taking requests.
 */
export function registerWithConsul(options: { service: string; config: RuntimeEnv; apps: readonly App[]; logger: Logger; shutdown: Shutdown }): ConsulRegistration[] {
  const { service, config, logger, shutdown } = options;
  if (config.DISCOVERY !== 'consul') return [];
  const client = new ConsulClient({ address: config.CONSUL_HTTP_ADDR, token: config.CONSUL_HTTP_TOKEN });
  const address = serviceAddress(config);
  const version = packageVersion();
  const registrations: ConsulRegistration[] = [];
  for (const app of options.apps) {
    const bound = app.server.address() as AddressInfo | string | null;
    if (!bound || typeof bound === 'string' || !app.hasRoute({ method: 'GET', url: READINESS_PATH })) continue;
    const registration = new ConsulRegistration({
      client,
      logger,
      registration: consulServiceRegistration({ service, address, port: bound.port, version, checkIntervalMs: config.CONSUL_CHECK_INTERVAL_MS }),
    });
    registration.start();
    shutdown.add(`consul registration ${registration.id}`, () => registration.close({ timeoutMs: Math.min(2_000, config.SHUTDOWN_TIMEOUT_MS / 4) }));
    registrations.push(registration);
  }
  if (registrations.length === 0) logger.warn('DISCOVERY=consul, but no HTTP app serves /health/ready: nothing registered in Consul');
  return registrations;
}
