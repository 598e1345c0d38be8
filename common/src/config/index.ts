import { z } from 'zod';
import { consulBaseUrl } from '../discovery/consul-client.ts';

/** Raised by {@link loadConfig} when the environment does not satisfy a service's schema. */
export class ConfigError extends Error {
  /** One entry per bad variable: its name and what was expected. */
  readonly problems: { variable: string; expected: string }[];

  constructor(problems: { variable: string; expected: string }[]) {
    super(
      `Invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.expected}`).join('\n')}\n` +
        'See .env.example at the repository root for every variable.',
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * Parses `env` (default `process.env`) with `schema`. Every key of the schema is an environment
 * variable; describe it with `.describe()` so the error can say what was expected.
 * @throws ConfigError naming each bad or missing variable.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  // Empty strings count as unset, as in most .env tooling.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const shape = schema.shape as Record<string, z.ZodType>;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? '(environment)');
      const description = shape[variable]?.description;
      return { variable, expected: description ? `${issue.message} — expected ${description}` : issue.message };
    }),
  );
}

/**
 * Like {@link loadConfig}, but prints the problems and exits with status 78 (EX_CONFIG) instead of
 * throwing: the call to make at the top of a `main.ts`.
 */
export function loadConfigOrExit<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  try {
    return loadConfig(schema, env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78);
    }
    throw error;
  }
}

/** An integer from an environment string, within bounds. */
export const envInt = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** A boolean from an environment string: `true`/`1`/`yes` or `false`/`0`/`no`. */
export const envBool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

/** A comma-separated list from an environment string. */
export const envList = z.string().transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean));

/** `host:port` with a host name, an IPv4 address or a bracketed IPv6 address, and a port 1..65535. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

/**
 * A comma-separated list of `host:port` addresses from an environment string (e.g. Kafka's bootstrap
 * brokers), trimmed. Unlike {@link envList}, an empty entry (`a:1,,b:2`) is an error, as is an
 * entry without a valid port.
 */
export const envHostPortList = z.string().transform((value, ctx) => {
  const entries = value.split(',').map((entry) => entry.trim());
  const bad = entries.filter((entry) => {
    const port = HOST_PORT.exec(entry)?.[1];
    return port === undefined || Number(port) < 1 || Number(port) > 65_535;
  });
  if (bad.length > 0) {
    ctx.addIssue({ code: 'custom', message: `not host:port: ${bad.map((entry) => (entry === '' ? 'an empty entry' : `"${entry}"`)).join(', ')}` });
  }
  return entries;
});

/** The variables every service reads. Extend it with the service's own: `baseEnv.extend({...})`. */
export const baseEnv = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development').describe('development, test or production'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('a pino level'),
  HOST: z.string().default('127.0.0.1').describe('the address to listen on (0.0.0.0 in containers)'),
  REDIS_BROKER_URL: z.url().default('redis://127.0.0.1:6379').describe('a redis:// URL of the task broker (and of the event streams with EVENT_BUS=redis)'),
  REDIS_RESULT_BACKEND: z.url().optional().describe('a redis:// URL for task results (default: REDIS_BROKER_URL)'),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('civildiy')
    .describe('the prefix of every Redis key (queues, streams, feeds): several systems or test runs can share one Redis'),
  DATA_DIR: z.string().default('.data').describe('the folder for embedded databases and generated keys'),
  AUTH_JWKS_URL: z.url().default('http://127.0.0.1:8101/.well-known/jwks.json').describe("the auth service's JWKS URL"),
  SHUTDOWN_TIMEOUT_MS: envInt(100, 600_000).default(10_000).describe('how long a shutdown may wait for running work (ms)'),
  EVENTS_CLAIM_IDLE_MS: envInt(1_000, 3_600_000)
    .default(30_000)
    .describe("an event a consumer read but did not acknowledge this long (its handler failed or its process died) is taken over by another consumer of the group (ms)"),
  EVENT_BUS: z
    .enum(['redis', 'kafka'])
    .default('redis')
    .describe('the event bus transport: redis (Redis Streams on REDIS_BROKER_URL) or kafka (KAFKA_BROKERS; npm start runs a local broker when KAFKA_BROKERS is unset)'),
  KAFKA_BROKERS: envHostPortList
    .default(['127.0.0.1:9092'])
    .describe('EVENT_BUS=kafka: comma-separated host:port of the bootstrap brokers; when unset, npm start runs a local broker (KAFKA_PORT) and points the services at it'),
  KAFKA_PARTITIONS: envInt(1, 10_000).default(3).describe('EVENT_BUS=kafka: partitions of a topic the bus creates (an existing topic keeps its own)'),
  KAFKA_REPLICATION_FACTOR: envInt(1, 100).default(1).describe('EVENT_BUS=kafka: replicas of a topic the bus creates (at most the number of brokers)'),
  KAFKA_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/)
    .default('')
    .describe('EVENT_BUS=kafka: put before every topic and consumer group name (letters, digits, . _ -), so several systems or test runs can share one cluster'),
  KAFKA_SESSION_TIMEOUT_MS: envInt(6_000, 300_000)
    .default(10_000)
    .describe("EVENT_BUS=kafka: a consumer not heard of for this long loses its partitions to its group's other members (ms)"),
  EMBEDDED_VACUUM_INTERVAL_MS: envInt(1_000, 86_400_000)
    .default(600_000)
    .describe('how often an embedded (PGlite) database is vacuumed and analysed, as autovacuum would on a server (ms)'),
  HTTP_MAX_CONCURRENT_REQUESTS: envInt(1, 100_000)
    .default(64)
    .describe('requests a service serves at once; more wait briefly (HTTP_MAX_QUEUE_MS) or are refused with 503 service.overloaded'),
  HTTP_MAX_QUEUE_MS: envInt(0, 60_000)
    .default(250)
    .describe('the longest a request waits for a free slot before 503 service.overloaded with Retry-After (ms)'),
  HTTP_MAX_QUEUED_REQUESTS: envInt(0, 1_000_000).default(256).describe('requests waiting for a slot at most; more are refused at once'),
  HTTP_REQUEST_TIMEOUT_MS: envInt(100, 600_000)
    .default(30_000)
    .describe("a request's deadline when its caller sets none (X-Request-Timeout-Ms), and the cap of those it sets: no transaction commits after it (ms)"),
  TRUSTED_PROXIES: envList
    .default(['127.0.0.1', '::1'])
    .describe("comma-separated addresses (or CIDR ranges) whose X-Forwarded-For this service believes: the gateway's; default loopback, where npm start runs it"),
  DISCOVERY: z
    .enum(['static', 'consul'])
    .default('static')
    .describe('how services find each other: static (the <NAME>_URL variables and default ports) or consul (each service registers in Consul at CONSUL_HTTP_ADDR with a check of /health/ready; the gateway routes to the healthy instances)'),
  CONSUL_HTTP_ADDR: z
    .string()
    .refine(
      (value) => {
        try {
          return consulBaseUrl(value) !== '';
        } catch {
          return false;
        }
      },
      { message: 'not an http(s)://host:port address' },
    )
    .default('http://127.0.0.1:8500')
    .describe("DISCOVERY=consul: the Consul agent's HTTP address, http(s)://host:port (host:port means http)"),
  CONSUL_HTTP_TOKEN: z.string().optional().describe('DISCOVERY=consul: an ACL token for Consul (sent as X-Consul-Token); unset: none'),
  SERVICE_ADDRESS: z
    .string()
    .regex(/^[^\s/:]+$|^\[?[0-9A-Fa-f:.]+\]?$/, 'a host name or an IP address')
    .optional()
    .describe('DISCOVERY=consul: the address other processes (and the Consul agent\'s check) reach this instance at; unset: HOST when it is a specific address, else the host name'),
  CONSUL_CHECK_INTERVAL_MS: envInt(100, 3_600_000)
    .default(10_000)
    .describe("DISCOVERY=consul: how often the Consul agent calls an instance's /health/ready (ms; Consul runs checks at most once a second)"),
});
export type BaseEnv = z.infer<typeof baseEnv>;

/** The variables of {@link baseEnv} that shape a service's HTTP handling (admission, deadlines, proxies). */
export type HttpEnvVariable = 'HTTP_MAX_CONCURRENT_REQUESTS' | 'HTTP_MAX_QUEUE_MS' | 'HTTP_MAX_QUEUED_REQUESTS' | 'HTTP_REQUEST_TIMEOUT_MS' | 'TRUSTED_PROXIES';

/** What the shared runtime reads: {@link BaseEnv} without the HTTP variables (the gateway has its own). */
export type RuntimeEnv = Omit<BaseEnv, HttpEnvVariable>;

export { SERVICE_ENV, SERVICE_NODE_ARGS, STOP_WITH_LAUNCHER_VARIABLE } from './launcher-contract.ts';
