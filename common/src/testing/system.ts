import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalPostgres } from '../db/local-postgres.ts';
import { newId } from '../ids/index.ts';
import { SERVICES } from '../topology/index.ts';
import { repositoryRoot } from './mock-providers.ts';
import { removeKafkaPrefix } from './kafka-prefix.ts';
import { freePort, runTypescriptCommand, startServiceProcess, type ServiceProcess } from './processes.ts';
import { removeRedisPrefix } from './redis.ts';

/** Every process {@link startSystem} can start. */
export const SYSTEM_SERVICES = [
  'mock-providers',
  'auth-service',
  'profile-service',
  'posts-service',
  'feed-service',
  'search-service',
  'order-service',
  'notification-service',
  'worker',
  'gateway',
  'dashboard',
] as const;
export type SystemService = (typeof SYSTEM_SERVICES)[number];

/** The processes of the order slice (flow 5.1), in start order. */
export const SLICE_SERVICES = ['mock-providers', 'auth-service', 'order-service', 'notification-service', 'worker'] as const;
export type SliceService = (typeof SLICE_SERVICES)[number];

/** The processes of the social core (flow 5.2): identity, profiles, posts, feeds behind the gateway. */
export const SOCIAL_SERVICES = ['auth-service', 'profile-service', 'posts-service', 'feed-service', 'gateway'] as const;

/**
 * Start stages: a stage starts once every process of the earlier ones is ready (the gateway after
 * its upstreams, the dashboard last: it watches them all).
 */
const STAGES: readonly (readonly SystemService[])[] = [
  ['mock-providers', 'auth-service'],
  ['profile-service', 'posts-service', 'feed-service', 'search-service', 'order-service', 'notification-service', 'worker'],
  ['gateway'],
  ['dashboard'],
];

/** A system of real processes (e2e tests, benchmarks). */
export interface SystemUnderTest {
  /** The Redis key prefix isolating this system. */
  prefix: string;
  /**
   * With `EVENT_BUS=kafka`: the prefix of its topics and consumer groups (`KAFKA_PREFIX`), by default
   * `<prefix>.`, so that systems sharing one broker do not see each other's events. Otherwise undefined.
   */
  kafkaPrefix: string | undefined;
  /** Its temporary data folder (embedded databases, the local Postgres server's cluster, keys). */
  dataDir: string;
  /** The environment every process got. */
  env: Record<string, string>;
  /** The processes started, in start order. */
  services: readonly SystemService[];
  /** Base URL of every service (allocated whether started or not). */
  urls: {
    auth: string;
    profiles: string;
    posts: string;
    feed: string;
    search: string;
    orders: string;
    notifications: string;
    payments: string;
    messaging: string;
    embeddings: string;
    worker: string;
    gateway: string;
    dashboard: string;
  };
  /**
   * Each service's `/metrics` (mock-providers: the payments app, both providers share one registry;
   * gateway: its operations port, `GATEWAY_OPS_PORT`).
   */
  metricsUrls: Record<SystemService, string>;
  /** Base URL of every service by its name (the gateway's public one; mock-providers: payments). */
  serviceUrls: Record<SystemService, string>;
  /** Every process started, by name (`worker` is the first worker; more from {@link startWorker}). */
  processes: Map<string, ServiceProcess>;
  /** Starts one more worker process under a unique name. */
  startWorker(name: string, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /** Starts (again) one of the system's services under its own name and port, e.g. after killing it. */
  restart(service: SystemService, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /**
   * Grants `role` (default `operator`) to the account of `email` as an operator does, with
   * auth-service's role command (`npm run -w auth-service role -- grant <email> <role>`, run from its
   * sources) on the system's auth database (with embedded PGlite databases, auth-service is stopped
   * meanwhile and started again). The account's tokens carry the role from its next login or refresh.
   * @throws Error with the command's output when it does not exit 0.
   */
  grantRole(email: string, role?: string): Promise<void>;
  /** The last output of every process, for failure messages. */
  logs(): string;
  /**
   * SIGTERM to every process (SIGKILL after `graceMs`), then deletes the data folder, the Redis keys
   * and, on Kafka with the default `KAFKA_PREFIX`, the prefix's topics and consumer groups (best
   * effort: a broker that is gone is not waited for). Idempotent.
   */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link startSystem}. */
export interface StartSystemOptions {
  /** The processes to start. Default: the order slice ({@link SLICE_SERVICES}). */
  services?: readonly SystemService[];
  /**
   * Extra environment for every process (wins over the defaults). With `EVENT_BUS: 'kafka'` (and
   * `KAFKA_BROKERS`), `KAFKA_PREFIX` defaults to one of the system's own, whose topics and groups
   * {@link SystemUnderTest.stop} deletes; a `KAFKA_PREFIX` given here is used as it is and left in place.
   */
  env?: Record<string, string>;
  /** How long each process may take to become ready. Default 90 s. */
  readyTimeoutMs?: number;
  /**
   * Where the databases of services without a `*_DATABASE_URL` in `env` run, as under `npm start`:
   * `local-postgres` (default) a database each on a Postgres server of the system's own (the
   * binaries of `LocalPostgres`, on a free port, data in the system's folder; search-service stays
   * on PGlite for pgvector), or `pglite` embedded in every service.
   */
  databases?: 'local-postgres' | 'pglite';
  /** Run the services' compiled `dist/main.js` with plain node, as `npm start` does (build first). Default false: TypeScript through tsx. */
  compiled?: boolean;
}

/**
 * Grants `role` to the account of `email` with auth-service's role command run from its sources, in
 * the environment `env` of a running system (its `AUTH_DATABASE_URL`, or the `DATA_DIR` whose local
 * Postgres server `npm start` runs). See {@link SystemUnderTest.grantRole}.
 */
export async function grantRole(env: Record<string, string>, email: string, role = 'operator'): Promise<void> {
  const { code, stdout, stderr } = await runTypescriptCommand({
    cwd: path.join(repositoryRoot, 'auth-service'),
    script: 'src/role-command.ts',
    args: ['grant', email, role],
    env: { ...process.env, ...env, LOG_FORMAT: 'json' },
  });
  if (code !== 0) throw new Error(`role grant ${email} ${role} exited ${code}:\n${stdout}${stderr}`);
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
 * Starts the chosen services (default: the order slice) as real processes on free ports, isolated
 * by a fresh Redis key prefix and a temporary data folder, and resolves when every one answers
 * `/health/ready`. Password hashing is made cheap (registration is set-up here), and a killed
 * worker's job or consumer's events are taken over within seconds instead of the production 30 s.
 * On Kafka (`env.EVENT_BUS: 'kafka'`) the system gets a topic and group prefix of its own too.
 */
export async function startSystem(options: StartSystemOptions = {}): Promise<SystemUnderTest> {
  const wanted = new Set<SystemService>(options.services ?? SLICE_SERVICES);
  const allocated = await Promise.all(SYSTEM_SERVICES.map(() => freePort()));
  const ports = Object.fromEntries(SYSTEM_SERVICES.map((name, index) => [name, allocated[index]!])) as Record<SystemService, number>;
  const messaging = await freePort();
  const embeddings = await freePort();
  const gatewayOps = await freePort();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'civildiy-system-'));
  // As root the Postgres server runs as another user, who must reach its folder inside this one.
  await chmod(dataDir, 0o755);
  const prefix = `sut-${newId().slice(-12)}`;
  const onKafka = options.env?.EVENT_BUS === 'kafka';
  // Kafka topics and groups are cluster-wide: the system's own prefix isolates it as REDIS_KEY_PREFIX does on Redis.
  const ownKafkaPrefix = onKafka && options.env?.KAFKA_PREFIX === undefined ? `${prefix}.` : undefined;
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    REDIS_KEY_PREFIX: prefix,
    ...(ownKafkaPrefix ? { KAFKA_PREFIX: ownKafkaPrefix } : {}),
    AUTH_PORT: String(ports['auth-service']),
    PROFILE_PORT: String(ports['profile-service']),
    POSTS_PORT: String(ports['posts-service']),
    FEED_PORT: String(ports['feed-service']),
    SEARCH_PORT: String(ports['search-service']),
    ORDER_PORT: String(ports['order-service']),
    NOTIFICATION_PORT: String(ports['notification-service']),
    WORKER_PORT: String(ports.worker),
    GATEWAY_PORT: String(ports.gateway),
    DASHBOARD_PORT: String(ports.dashboard),
    GATEWAY_OPS_PORT: String(gatewayOps),
    MOCK_PAYMENTS_PORT: String(ports['mock-providers']),
    MOCK_MESSAGING_PORT: String(messaging),
    MOCK_EMBEDDINGS_PORT: String(embeddings),
    AUTH_JWKS_URL: `${url(ports['auth-service'])}/.well-known/jwks.json`,
    PAYMENTS_URL: url(ports['mock-providers']),
    MESSAGING_URL: url(messaging),
    EMBEDDINGS_URL: url(embeddings),
    // Upstreams of the gateway (static discovery).
    AUTH_URL: url(ports['auth-service']),
    PROFILE_URL: url(ports['profile-service']),
    POSTS_URL: url(ports['posts-service']),
    FEED_URL: url(ports['feed-service']),
    SEARCH_URL: url(ports['search-service']),
    ORDER_URL: url(ports['order-service']),
    NOTIFICATION_URL: url(ports['notification-service']),
    ARGON2_MEMORY_KIB: '1024',
    ARGON2_TIME_COST: '1',
    WORKER_LOCK_MS: '2000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    EVENTS_CLAIM_IDLE_MS: '3000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    // The deterministic mock unless a test asks for the real model (loading it takes a second and ~100 MB).
    EMBEDDINGS_PROVIDER: 'mock',
    ...options.env,
  };
  let postgres: LocalPostgres | undefined;
  const onLocalPostgres = SERVICES.filter((info) => info.database && !info.database.vector && wanted.has(info.name as SystemService) && !env[info.database.urlVariable]);
  if ((options.databases ?? 'local-postgres') === 'local-postgres' && onLocalPostgres.length > 0) {
    try {
      postgres = await LocalPostgres.start({ dataDir, port: await freePort() });
      for (const info of onLocalPostgres) env[info.database!.urlVariable] = await postgres.database(info.database!.name);
    } catch (error) {
      await postgres?.stop();
      await rm(dataDir, { recursive: true, force: true });
      throw error;
    }
  }
  const processes = new Map<string, ServiceProcess>();
  const start = async (workspace: SystemService, name: string, port: number, extraEnv: Record<string, string> = {}) => {
    const service = await startServiceProcess({
      root: repositoryRoot,
      workspace,
      name,
      env: { ...env, ...extraEnv },
      readyUrl: `${url(port)}/health/ready`,
      readyTimeoutMs: options.readyTimeoutMs ?? 90_000,
      compiled: options.compiled ?? false,
    });
    processes.set(name, service);
    return service;
  };
  const services = STAGES.flat().filter((name) => wanted.has(name));
  let stopping: Promise<void> | undefined;
  const system: SystemUnderTest = {
    prefix,
    kafkaPrefix: onKafka ? env.KAFKA_PREFIX : undefined,
    dataDir,
    env,
    services,
    urls: {
      auth: url(ports['auth-service']),
      profiles: url(ports['profile-service']),
      posts: url(ports['posts-service']),
      feed: url(ports['feed-service']),
      search: url(ports['search-service']),
      orders: url(ports['order-service']),
      notifications: url(ports['notification-service']),
      payments: url(ports['mock-providers']),
      messaging: url(messaging),
      embeddings: url(embeddings),
      worker: url(ports.worker),
      gateway: url(ports.gateway),
      dashboard: url(ports.dashboard),
    },
    serviceUrls: Object.fromEntries(SYSTEM_SERVICES.map((name) => [name, url(ports[name])])) as Record<SystemService, string>,
    metricsUrls: Object.fromEntries(SYSTEM_SERVICES.map((name) => [name, `${url(name === 'gateway' ? gatewayOps : ports[name])}/metrics`])) as Record<SystemService, string>,
    processes,
    startWorker: async (name, extraEnv = {}) => {
      const port = await freePort();
      return start('worker', name, port, { WORKER_PORT: String(port), ...extraEnv });
    },
    restart: (service, extraEnv = {}) => start(service, service, ports[service], extraEnv),
    grantRole: async (email, role) => {
      const auth = processes.get('auth-service');
      if (auth === undefined || env.AUTH_DATABASE_URL) return grantRole(env, email, role);
      // An embedded PGlite database opens in one process only: the command runs while auth-service
      // is stopped, as an operator of such a stack has to.
      await auth.stop('SIGTERM');
      try {
        await grantRole({ ...env, LOCAL_DATABASE: 'pglite' }, email, role);
      } finally {
        await start('auth-service', 'auth-service', ports['auth-service']);
      }
    },
    logs: () => [...processes.values()].map((p) => `----- ${p.name}\n${p.output().slice(-6_000)}`).join('\n'),
    stop(graceMs = 15_000) {
      stopping ??= (async () => {
        await Promise.allSettled([...processes.values()].map((p) => stopWithin(p, graceMs)));
        await postgres?.stop().catch(() => undefined);
        await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
        await removeRedisPrefix(prefix);
        if (ownKafkaPrefix) await removeKafkaPrefix((env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','), ownKafkaPrefix).catch(() => undefined);
      })();
      return stopping;
    },
  };
  try {
    for (const stage of STAGES) {
      await Promise.all(stage.filter((name) => wanted.has(name)).map((name) => start(name, name, ports[name])));
    }
  } catch (error) {
    await system.stop().catch(() => undefined);
    throw error;
  }
  return system;
}
