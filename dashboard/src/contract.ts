/**
 * The dashboard's HTTP API, one zod schema per body: the server's route schemas (api.ts), the
 * OpenAPI document, the ops CLI and the web app's types (`import type`) all come from here.
 *
 * Every route is under `/admin` and needs an access token with the `operator` role (401 without a
 * token, 403 `auth.role_required` for an ordinary user), except the sign-in routes under
 * `/admin/session`. The gateway routes `/admin` to the dashboard with the same rule.
 */
import { z } from 'zod';
import { SERIES } from './series.ts';

// ---------------------------------------------------------------- sign-in

export const SignInBody = z.object({
  /** An email or a username, as auth-service's login takes. */
  login: z.string().trim().min(1).max(254),
  password: z.string().min(1).max(256),
  /** The device token of an earlier sign-in on this browser (auth-service throttles failed logins per device with it). */
  deviceToken: z.string().min(1).max(512).optional(),
});
export const RefreshBody = z.object({ refreshToken: z.string().min(1).max(512) });
export const OperatorSession = z.object({
  accessToken: z.string(),
  refreshToken: z.string(),
  /** Seconds until the access token expires (refresh before). */
  expiresIn: z.number().int(),
  /** Keep it on this device and send it with the next sign-in (sign-in only, not refresh). */
  deviceToken: z.string().optional(),
  user: z.object({ id: z.uuid(), username: z.string().nullable(), roles: z.array(z.string()) }),
});
export type OperatorSession = z.infer<typeof OperatorSession>;

// ---------------------------------------------------------------- services

/** green: live and ready; amber: live but a readiness check fails, or restarted in the last 10 minutes; red: not answering. */
export const Light = z.enum(['green', 'amber', 'red']);
export type Light = z.infer<typeof Light>;

export const ServiceStatus = z.object({
  name: z.string(),
  role: z.string(),
  url: z.string().nullable().describe('the instance probed; null when discovery knows none'),
  light: Light,
  live: z.boolean(),
  ready: z.boolean(),
  /** The readiness checks that failed, by name, with their error. */
  failingChecks: z.array(z.object({ name: z.string(), error: z.string() })),
  /** Why the service is red (connection refused, timeout, status code). */
  error: z.string().nullable(),
  uptimeSeconds: z.number().nullable(),
  residentMemoryBytes: z.number().nullable(),
  heapUsedBytes: z.number().nullable(),
  /** Restarts the dashboard has seen (a new process start time), since the dashboard's data began. */
  restarts: z.number().int(),
  lastRestartAt: z.string().nullable(),
  checkedAt: z.string(),
});
export type ServiceStatus = z.infer<typeof ServiceStatus>;

// ---------------------------------------------------------------- task queues

export const TaskTiming = z.object({ task: z.string(), runs: z.number().int().describe('attempts in the last 15 minutes'), p50Ms: z.number().nullable(), p99Ms: z.number().nullable() });
export const QueueStatus = z.object({
  queue: z.string(),
  counts: z.object({ waiting: z.number().int(), active: z.number().int(), delayed: z.number().int(), failed: z.number().int().describe('dead letters'), completed: z.number().int() }),
  completedPerMinute: z.number().nullable().describe('over the last 5 minutes; null until two scrapes of the workers could be compared'),
  failedPerMinute: z.number().nullable().describe('attempts that failed (retried or dead-lettered), last 5 minutes; null as above'),
  oldestWaitingAgeSeconds: z.number().nullable(),
  workers: z.number().int(),
  tasks: z.array(TaskTiming),
});
export type QueueStatus = z.infer<typeof QueueStatus>;

// ---------------------------------------------------------------- event streams

export const GroupStatus = z.object({
  group: z.string(),
  consumers: z.number().int(),
  lag: z.number().int().nullable(),
  pending: z.number().int(),
  deliveredPerMinute: z.number().nullable().describe('events handled by the group, last 5 minutes'),
});
export const StreamStatus = z.object({
  topic: z.string(),
  transport: z.enum(['redis', 'kafka']),
  groups: z.array(GroupStatus),
  deadLetters: z.number().int().describe('counted up to 1,000'),
});
export type StreamStatus = z.infer<typeof StreamStatus>;

// ---------------------------------------------------------------- dead letters

export const DeadLetterKind = z.enum(['task', 'event']);
/**
 * A dead letter's id in the dashboard: `task:<queue>:<jobId>` or `event:<topic>:<dead letter id>`
 * (URL-encode it in a path).
 */
export const DeadLetterId = z.string().min(3).max(400).regex(/^(task|event):[^:]+:.+$/, 'task:<queue>:<id> or event:<topic>:<id>');

/** Whether the payload still parses with the contract it was sent under (a changed contract, a bug). */
export const ContractCheck = z.object({ status: z.enum(['valid', 'invalid', 'unknown']), issues: z.array(z.string()) });

export const DeadLetterSummary = z.object({
  id: DeadLetterId,
  kind: DeadLetterKind,
  /** The queue (task) or topic (event). */
  source: z.string(),
  /** The task name or the event type. */
  name: z.string(),
  /** The consumer group that failed an event. */
  group: z.string().nullable(),
  errorCode: z.string(),
  errorMessage: z.string(),
  failedAt: z.string(),
  attempts: z.number().int(),
});
export type DeadLetterSummary = z.infer<typeof DeadLetterSummary>;

export const Attempt = z.object({
  attempt: z.number().int(),
  at: z.string(),
  /** The worker or consumer that ran it, when known. */
  worker: z.string().nullable(),
  code: z.string(),
  message: z.string(),
});
export const DeadLetterDetail = DeadLetterSummary.extend({
  payload: z.unknown(),
  contract: ContractCheck,
  attemptsLog: z.array(Attempt),
  correlationId: z.string().nullable(),
});
export type DeadLetterDetail = z.infer<typeof DeadLetterDetail>;

export const DeadLetterQuery = z.object({
  kind: DeadLetterKind.optional(),
  source: z.string().max(200).optional().describe('a queue or a topic'),
  code: z.string().max(200).optional().describe('an error code'),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});
export const DeadLetterList = z.object({ total: z.number().int(), items: z.array(DeadLetterSummary) });
export const DeadLetterParams = z.object({ id: DeadLetterId });

/** Redrive several: the selected `ids`, or every dead letter of `kind` (optionally of one `source`). */
export const BulkRedriveBody = z.union([
  z.object({ ids: z.array(DeadLetterId).min(1).max(500) }),
  z.object({ kind: DeadLetterKind, source: z.string().max(200).optional() }),
]);
export const RedriveOutcome = z.object({ redriven: z.array(z.string()), notFound: z.array(z.string()), alreadyRedriven: z.array(z.string()) });
/** A discard must name the dead letter again: a confirmation that survives a replayed request. */
export const DiscardBody = z.object({ confirm: DeadLetterId });
export const DiscardOutcome = z.object({ discarded: DeadLetterId });

// ---------------------------------------------------------------- activity

export const Activity = z.object({
  id: z.string(),
  at: z.string(),
  actor: z.object({ id: z.string(), username: z.string().nullable(), via: z.enum(['dashboard', 'cli']) }),
  action: z.enum(['dead_letter.redrive', 'dead_letter.discard', 'sign_in']),
  target: z.string(),
  outcome: z.enum(['done', 'not_found', 'already_redriven', 'failed']),
});
export type Activity = z.infer<typeof Activity>;
export const ActivityQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });
export const ActivityList = z.object({ items: z.array(Activity).describe('newest first') });

// ---------------------------------------------------------------- the last hour

export { SERIES } from './series.ts';
export const SeriesName = z.enum(SERIES);
export type SeriesName = z.infer<typeof SeriesName>;

export const History = z.object({
  /** Seconds between points. */
  stepSeconds: z.number().int(),
  /** Unix seconds of each point, oldest first. */
  times: z.array(z.number()),
  /** One value per time (null: no data then). */
  series: z.record(SeriesName, z.array(z.number().nullable())),
});
export type History = z.infer<typeof History>;
export const HistoryQuery = z.object({ minutes: z.coerce.number().int().min(1).max(60).default(60) });

// ---------------------------------------------------------------- live updates

/** `GET /admin/overview` and the `overview` event of `GET /admin/live` (server-sent events). */
export const Overview = z.object({
  generatedAt: z.string(),
  services: z.array(ServiceStatus),
  queues: z.array(QueueStatus),
  streams: z.array(StreamStatus),
  deadLetters: z.object({ tasks: z.number().int(), events: z.number().int() }),
});
export type Overview = z.infer<typeof Overview>;

/**
 * Events of `GET /admin/live`: `overview` (every few seconds), `point` (a new point of every series:
 * `{ time, values }`), `activity` (an operator's action, as {@link Activity}).
 */
export const HistoryPoint = z.object({ time: z.number(), values: z.record(SeriesName, z.number().nullable()) });
export type HistoryPoint = z.infer<typeof HistoryPoint>;
