import { Registry } from 'prom-client';
import { createLogger, newId } from '@civildiy/common';
import { StaticDiscovery } from '@civildiy/common/discovery';
import { RedisStreamsEventBus, type EventBus } from '@civildiy/common/events';
import { Redis } from '@civildiy/common/redis';
import { TaskClient } from '@civildiy/common/tasks';
import { REDIS_URL, createTestTokens, removeRedisPrefix, uniquePrefix, type TestTokens } from '@civildiy/common/testing';
import type { ServiceInfo } from '@civildiy/common/topology';
import { assembleDashboard, type Dashboard } from '../src/dashboard-assembly.ts';

export const logger = createLogger({ service: 'dashboard-test', level: 'silent' });

/** Options of {@link startDashboard}. */
export interface DashboardUnderTestOptions {
  /** The services the panel watches (default none) and where they run. */
  services?: ServiceInfo[];
  urls?: Record<string, string>;
  refreshMs?: number;
  stepSeconds?: number;
  /** Default: a fresh one (removed at close). */
  prefix?: string;
  /** Where operators' tokens are verified (default: fresh test keys). */
  auth?: { jwksUrl: string };
  /** The built page's folder (default: none, `/` answers a hint). */
  webRoot?: string;
  /** The event bus whose admin port the dashboard reads (default: Redis Streams under the prefix; closed at close). */
  bus?: { events: EventBus; transport: 'redis' | 'kafka' };
}

/** A dashboard built as its service does, on real Redis under a prefix of its own, its app not listening. */
export interface DashboardUnderTest extends Dashboard {
  prefix: string;
  redis: Redis;
  tasks: TaskClient;
  bus: EventBus;
  tokens: TestTokens;
  /** A token with the operator role (user `operator-<id>`), and one of an ordinary user. */
  operatorToken: string;
  operatorId: string;
  userToken: string;
  /** Calls the app (inject); the body parsed. */
  call(method: string, url: string, options?: { token?: string | undefined; body?: unknown }): Promise<{ status: number; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test JSON
  close(options?: { keepKeys?: boolean }): Promise<void>;
}

/** Builds the dashboard for a test (the monitor loop is not started: call `monitor.start()`). */
export async function startDashboard(options: DashboardUnderTestOptions = {}): Promise<DashboardUnderTest> {
  const prefix = options.prefix ?? uniquePrefix('dashboard');
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const tasks = new TaskClient({ connection: REDIS_URL, prefix, logger, registry: new Registry() });
  const bus =
    options.bus?.events ?? new RedisStreamsEventBus({ connection: REDIS_URL, prefix: `${prefix}:`, logger, claimIdleMs: 1_000, blockMs: 200, registry: new Registry() });
  const tokens = await createTestTokens();
  const operatorId = newId();
  const dashboard = await assembleDashboard({
    logger,
    redis,
    prefix,
    tasks,
    events: bus,
    transport: options.bus?.transport ?? 'redis',
    services: options.services ?? [],
    discovery: new StaticDiscovery({ urls: options.urls ?? {} }),
    auth: options.auth ?? tokens.keys,
    readiness: { redis: () => redis.ping() },
    refreshMs: options.refreshMs ?? 100,
    probeTimeoutMs: 1_000,
    stepSeconds: options.stepSeconds ?? 10,
    gatewayOpsPort: 0,
    metricsRegistry: new Registry(),
    logRequests: false,
    webRoot: options.webRoot,
  });
  await dashboard.app.ready();
  return {
    ...dashboard,
    prefix,
    redis,
    tasks,
    bus,
    tokens,
    operatorId,
    operatorToken: await tokens.token(operatorId, { username: 'ops-alice', roles: ['operator'] }),
    userToken: await tokens.token(newId(), { username: 'bob' }),
    async call(method, url, { token, body } = {}) {
      const response = await dashboard.app.inject({
        method: method as 'GET',
        url,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        ...(body === undefined ? {} : { payload: body as object }),
      });
      return { status: response.statusCode, body: response.body ? response.json() : undefined };
    },
    async close({ keepKeys = false } = {}) {
      await dashboard.monitor.close();
      await dashboard.app.close();
      await bus.close();
      await tasks.close();
      await redis.quit();
      if (!keepKeys) await removeRedisPrefix(prefix);
    },
  };
}

/** `encodeURIComponent` of a dead letter id, for a path. */
export const path = (id: string) => encodeURIComponent(id);
