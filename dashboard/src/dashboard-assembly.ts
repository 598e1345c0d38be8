import type { Logger } from '@civildiy/common';
import type { ServiceDiscovery } from '@civildiy/common/discovery';
import type { EventBusAdmin } from '@civildiy/common/events';
import type { Redis } from '@civildiy/common/redis';
import { createTokenVerifier, type App, type HttpSettings, type KeySource, type ReadinessCheck } from '@civildiy/common/service';
import type { TaskClient } from '@civildiy/common/tasks';
import type { ServiceInfo } from '@civildiy/common/topology';
import type { Registry } from 'prom-client';
import { ActivityLog } from './activity-log.ts';
import { buildApp } from './app.ts';
import { contractCatalog, type ContractCatalog } from './contract-catalog.ts';
import type { StreamStatus } from './contract.ts';
import { DashboardMonitor } from './dashboard-monitor.ts';
import { DeadLetterDesk } from './dead-letter-desk.ts';
import { HistoryCollector } from './history-collector.ts';
import { HistoryStore } from './history-store.ts';
import { LiveUpdates } from './live-updates.ts';
import { MetricWindow } from './metric-window.ts';
import { QueueStats } from './queue-stats.ts';
import { RestartTracker } from './restart-tracker.ts';
import { ServiceProbe } from './service-probe.ts';
import { OperatorSignIn } from './sign-in.ts';
import { StreamStats } from './stream-stats.ts';

/** What the dashboard is made of (see {@link assembleDashboard}). */
export interface DashboardAssemblyOptions {
  logger: Logger;
  /** The dashboard's own keys (`REDIS_KEY_PREFIX`): activity, history, restarts, redriven ids. */
  redis: Redis;
  prefix: string;
  /** The task queue (its queues and dead letters). */
  tasks: TaskClient;
  /** The event bus's admin port and its transport. */
  events: EventBusAdmin;
  transport: StreamStatus['transport'];
  /** The services to watch and where they run. */
  services: readonly ServiceInfo[];
  discovery: ServiceDiscovery;
  /** Where operators' tokens are verified. */
  auth: KeySource;
  readiness: Record<string, ReadinessCheck>;
  /** `DASHBOARD_REFRESH_MS`, `DASHBOARD_PROBE_TIMEOUT_MS`, `DASHBOARD_HISTORY_STEP_SECONDS`, `GATEWAY_OPS_PORT`. */
  refreshMs: number;
  probeTimeoutMs: number;
  stepSeconds: number;
  gatewayOpsPort: number;
  /** Default: the contracts of `@civildiy/common/contracts`. */
  catalog?: ContractCatalog;
  http?: Partial<HttpSettings>;
  webRoot?: string | undefined;
  metricsRegistry?: Registry;
  logRequests?: boolean;
}

/** The assembled dashboard: its HTTP app, and the loop to start (and close at shutdown). */
export interface Dashboard {
  app: App;
  monitor: DashboardMonitor;
  desk: DeadLetterDesk;
  history: HistoryStore;
}

/** Builds the dashboard's parts and its app (nothing runs until `monitor.start()`). */
export async function assembleDashboard(options: DashboardAssemblyOptions): Promise<Dashboard> {
  const { logger, redis, prefix, tasks } = options;
  const catalog = options.catalog ?? contractCatalog();
  const metrics = new MetricWindow();
  const activity = new ActivityLog(redis, prefix, logger);
  const history = new HistoryStore(redis, prefix, options.stepSeconds);
  const queue = (name: string) => tasks.queue(name);
  const monitor = new DashboardMonitor({
    probe: new ServiceProbe({
      services: options.services,
      discovery: options.discovery,
      timeoutMs: options.probeTimeoutMs,
      gatewayOpsPort: options.gatewayOpsPort,
      restarts: new RestartTracker(redis, prefix),
      metrics,
      logger,
    }),
    queues: new QueueStats({ queues: catalog.queues, tasks: catalog.tasks, queue, metrics }),
    streams: new StreamStats({ topics: catalog.topics, admin: options.events, transport: options.transport, metrics }),
    history: new HistoryCollector(metrics, history),
    activity,
    refreshMs: options.refreshMs,
    stepSeconds: options.stepSeconds,
    logger,
  });
  const desk = new DeadLetterDesk({ catalog, tasks: tasks.deadLetters, queue, events: options.events, redis, prefix, activity });
  const app = await buildApp({
    logger,
    auth: options.auth,
    readiness: options.readiness,
    signIn: new OperatorSignIn({ discovery: options.discovery, verify: createTokenVerifier(options.auth), activity, logger }),
    monitor,
    live: new LiveUpdates(monitor),
    history,
    desk,
    activity,
    webRoot: options.webRoot,
    ...(options.http ? { http: options.http } : {}),
    ...(options.metricsRegistry ? { metricsRegistry: options.metricsRegistry } : {}),
    ...(options.logRequests === undefined ? {} : { logRequests: options.logRequests }),
  });
  return { app, monitor, desk, history };
}
