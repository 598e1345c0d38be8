import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { newId } from '@civildiy/common';
import { freePort, removeRedisPrefix, repositoryRoot, startServiceProcess, type ServiceProcess } from '@civildiy/common/testing';

export const root = repositoryRoot;

/** The whole order slice running as real processes, isolated by a Redis key prefix and a data folder. */
export interface System {
  urls: { auth: string; orders: string; notifications: string; payments: string; messaging: string };
  env: Record<string, string>;
  processes: Map<string, ServiceProcess>;
  /** Starts one more worker process (its name must be unique). */
  startWorker(name: string, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /** Everything every process printed, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

/** Starts mock-providers, auth-, order- and notification-service and one worker. */
export async function startSystem(): Promise<System> {
  const [auth, orders, notifications, payments, messaging] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'civildiy-e2e-'));
  const prefix = `e2e-${newId().slice(-12)}`;
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    REDIS_KEY_PREFIX: prefix,
    AUTH_PORT: String(auth),
    ORDER_PORT: String(orders),
    NOTIFICATION_PORT: String(notifications),
    MOCK_PAYMENTS_PORT: String(payments),
    MOCK_MESSAGING_PORT: String(messaging),
    AUTH_JWKS_URL: `http://127.0.0.1:${auth}/.well-known/jwks.json`,
    PAYMENTS_URL: `http://127.0.0.1:${payments}`,
    MESSAGING_URL: `http://127.0.0.1:${messaging}`,
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    // A killed worker's job is taken over within a few seconds instead of the production 30 s.
    WORKER_LOCK_MS: '2000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '5000',
  };
  const processes = new Map<string, ServiceProcess>();
  const start = async (workspace: string, port: number, name = workspace, extraEnv: Record<string, string> = {}) => {
    const service = await startServiceProcess({
      root,
      workspace,
      name,
      env: { ...env, ...extraEnv },
      readyUrl: `http://127.0.0.1:${port}/health/ready`,
      readyTimeoutMs: 90_000,
    });
    processes.set(name, service);
    return service;
  };
  const system: System = {
    urls: {
      auth: `http://127.0.0.1:${auth}`,
      orders: `http://127.0.0.1:${orders}`,
      notifications: `http://127.0.0.1:${notifications}`,
      payments: `http://127.0.0.1:${payments}`,
      messaging: `http://127.0.0.1:${messaging}`,
    },
    env,
    processes,
    startWorker: async (name, extraEnv = {}) => {
      const port = await freePort();
      return start('worker', port, name, { WORKER_PORT: String(port), ...extraEnv });
    },
    logs: () => [...processes.values()].map((p) => `----- ${p.name}\n${p.output().slice(-6_000)}`).join('\n'),
    async stop() {
      await Promise.all([...processes.values()].map((p) => p.stop('SIGTERM')));
      await rm(dataDir, { recursive: true, force: true });
      await removeRedisPrefix(prefix);
    },
  };
  try {
    await Promise.all([start('mock-providers', payments), start('auth-service', auth)]);
    await Promise.all([start('order-service', orders), start('notification-service', notifications), system.startWorker('worker-1')]);
  } catch (error) {
    await system.stop().catch(() => undefined);
    throw error;
  }
  return system;
}

/** JSON over HTTP with a bearer token. */
export async function call(url: string, options: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const response = await fetch(url, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}
