import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { newId } from '../ids/index.ts';
import { repositoryRoot } from './mock-providers.ts';
import { freePort, startServiceProcess, type ServiceProcess } from './processes.ts';
import { removeRedisPrefix } from './redis.ts';

/** The processes of the order slice, in start order. */
export const SLICE_SERVICES = ['mock-providers', 'auth-service', 'order-service', 'notification-service', 'worker'] as const;
export type SliceService = (typeof SLICE_SERVICES)[number];

/** The order slice running as real processes (e2e tests, benchmarks). */
export interface SystemUnderTest {
  /** The Redis key prefix isolating this system. */
  prefix: string;
  /** Its temporary data folder (embedded databases, keys). */
  dataDir: string;
  /** The environment every process got. */
  env: Record<string, string>;
  urls: { auth: string; orders: string; notifications: string; payments: string; messaging: string; worker: string };
  /** Each process's `/metrics` (mock-providers: the payments app; both providers share one registry). */
  metricsUrls: Record<SliceService, string>;
  /** Every process started, by name (`worker` is the first worker; more from {@link startWorker}). */
  processes: Map<string, ServiceProcess>;
  /** Starts one more worker process under a unique name. */
  startWorker(name: string, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /** The last output of every process, for failure messages. */
  logs(): string;
  /** SIGTERM to every process (SIGKILL after `graceMs`), then deletes the data folder and the Redis keys. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link startSystem}. */
export interface StartSystemOptions {
  /** Extra environment for every process (wins over the defaults). */
  env?: Record<string, string>;
  /** How long each process may take to become ready. Default 90 s. */
  readyTimeoutMs?: number;
}

async function stopWithin(service: ServiceProcess, graceMs: number): Promise<void> {
  const timer = setTimeout(() => service.child.kill('SIGKILL'), graceMs);
  try {
    await service.stop('SIGTERM');
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts mock-providers, auth-, order- and notification-service and one worker as real processes on
 * free ports, isolated by a fresh Redis key prefix and a temporary data folder, and resolves when
 * every one answers `/health/ready`. Password hashing is made cheap (registration is set-up here),
 * and a killed worker's job is taken over within seconds instead of the production 30 s.
 */
export async function startSystem(options: StartSystemOptions = {}): Promise<SystemUnderTest> {
  const [auth, orders, notifications, payments, messaging, worker] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'civildiy-system-'));
  const prefix = `sut-${newId().slice(-12)}`;
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    REDIS_KEY_PREFIX: prefix,
    AUTH_PORT: String(auth),
    ORDER_PORT: String(orders),
    NOTIFICATION_PORT: String(notifications),
    WORKER_PORT: String(worker),
    MOCK_PAYMENTS_PORT: String(payments),
    MOCK_MESSAGING_PORT: String(messaging),
    AUTH_JWKS_URL: `${url(auth)}/.well-known/jwks.json`,
    PAYMENTS_URL: url(payments),
    MESSAGING_URL: url(messaging),
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    WORKER_LOCK_MS: '2000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    ...options.env,
  };
  const ports: Record<SliceService, number> = {
    'mock-providers': payments,
    'auth-service': auth,
    'order-service': orders,
    'notification-service': notifications,
    worker,
  };
  const processes = new Map<string, ServiceProcess>();
  const start = async (workspace: SliceService, name: string, port: number, extraEnv: Record<string, string> = {}) => {
    const service = await startServiceProcess({
      root: repositoryRoot,
      workspace,
      name,
      env: { ...env, ...extraEnv },
      readyUrl: `${url(port)}/health/ready`,
      readyTimeoutMs: options.readyTimeoutMs ?? 90_000,
    });
    processes.set(name, service);
    return service;
  };
  let stopping: Promise<void> | undefined;
  const system: SystemUnderTest = {
    prefix,
    dataDir,
    env,
    urls: { auth: url(auth), orders: url(orders), notifications: url(notifications), payments: url(payments), messaging: url(messaging), worker: url(worker) },
    metricsUrls: Object.fromEntries(SLICE_SERVICES.map((name) => [name, `${url(ports[name])}/metrics`])) as Record<SliceService, string>,
    processes,
    startWorker: async (name, extraEnv = {}) => {
      const port = await freePort();
      return start('worker', name, port, { WORKER_PORT: String(port), ...extraEnv });
    },
    logs: () => [...processes.values()].map((p) => `----- ${p.name}\n${p.output().slice(-6_000)}`).join('\n'),
    stop(graceMs = 15_000) {
      stopping ??= (async () => {
        await Promise.allSettled([...processes.values()].map((p) => stopWithin(p, graceMs)));
        await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
        await removeRedisPrefix(prefix);
      })();
      return stopping;
    },
  };
  try {
    await Promise.all([start('mock-providers', 'mock-providers', payments), start('auth-service', 'auth-service', auth)]);
    await Promise.all([
      start('order-service', 'order-service', orders),
      start('notification-service', 'notification-service', notifications),
      start('worker', 'worker', worker),
    ]);
  } catch (error) {
    await system.stop().catch(() => undefined);
    throw error;
  }
  return system;
}
