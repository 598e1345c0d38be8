import fastifyStatic from '@fastify/static';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { requireUser, type FastifyPluginAsyncZod } from '@civildiy/common/service';
import type { ActivityLog, Actor } from './activity-log.ts';
import {
  ActivityList,
  ActivityQuery,
  BulkRedriveBody,
  DeadLetterDetail,
  DeadLetterList,
  DeadLetterParams,
  DeadLetterQuery,
  DiscardBody,
  DiscardOutcome,
  History,
  HistoryQuery,
  OperatorSession,
  Overview,
  RedriveOutcome,
  RefreshBody,
  SignInBody,
} from './contract.ts';
import type { DashboardMonitor } from './dashboard-monitor.ts';
import type { DeadLetterDesk } from './dead-letter-desk.ts';
import type { HistoryStore } from './history-store.ts';
import type { LiveUpdates } from './live-updates.ts';
import type { OperatorSignIn } from './sign-in.ts';

/** What the routes call. */
export interface DashboardApiDeps {
  signIn: OperatorSignIn;
  monitor: DashboardMonitor;
  live: LiveUpdates;
  history: HistoryStore;
  desk: DeadLetterDesk;
  activity: ActivityLog;
  /** The built web page (`dashboard/dist/web`), when there is one: served at `/`. */
  webRoot?: string | undefined;
}

const OPERATOR_ONLY = 'Operators only: 401 without a valid token, 403 `auth.role_required` without the operator role.';
const operatorRoute = { security: [{ bearerAuth: [] }] };
const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) });

/** The operator of a request, for the activity log. */
function actorOf(request: FastifyRequest): Actor {
  const user = requireUser(request);
  return { id: user.id, username: user.username ?? null, via: 'dashboard' };
}

/** Every HTTP route of the dashboard: its API under `/admin` and its page at `/`. */
export function dashboardApi(deps: DashboardApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    const operator = app.requireRole('operator');

    app.post(
      '/admin/session',
      {
        schema: {
          tags: ['session'],
          summary: 'Sign an operator in (through auth-service)',
          description:
            "The credentials go to auth-service's login; its refusals come back as they are (401 `auth.invalid_credentials`, 429 with `Retry-After`). " +
            'A valid account without the operator role: 403 `dashboard.operator_required`.',
          body: SignInBody,
          response: { 200: OperatorSession, 403: ErrorBody },
        },
      },
      async (request) => deps.signIn.signIn(request.body, request.ip),
    );

    app.post(
      '/admin/session/refresh',
      {
        schema: {
          tags: ['session'],
          summary: 'Exchange a refresh token for a new operator session',
          description: 'Through auth-service; 403 `dashboard.operator_required` when the account no longer holds the operator role.',
          body: RefreshBody,
          response: { 200: OperatorSession },
        },
      },
      async (request) => deps.signIn.refresh(request.body.refreshToken, request.ip),
    );

    app.get(
      '/admin/overview',
      {
        onRequest: operator,
        schema: { ...operatorRoute, tags: ['monitoring'], summary: 'Services, task queues, event streams and dead letters now', description: OPERATOR_ONLY, response: { 200: Overview } },
      },
      async () => deps.monitor.overview(),
    );

    app.get(
      '/admin/history',
      {
        onRequest: operator,
        schema: {
          ...operatorRoute,
          tags: ['monitoring'],
          summary: 'The charts: one point per step over the last minutes (at most 60)',
          description: OPERATOR_ONLY,
          querystring: HistoryQuery,
          response: { 200: History },
        },
      },
      async (request) => deps.history.read(request.query.minutes),
    );

    app.get(
      '/admin/live',
      {
        onRequest: operator,
        schema: {
          ...operatorRoute,
          tags: ['monitoring'],
          summary: 'Live updates (server-sent events)',
          description:
            'Events: `overview` (at once, then every round), `point` (a new chart point), `activity` (an operator action); a comment line as heartbeat. ' +
            'Send the Authorization header (read it with fetch: EventSource cannot). ' +
            OPERATOR_ONLY,
        },
      },
      async (request, reply) => {
        reply.hijack();
        await deps.live.attach(reply.raw, { 'x-request-id': request.id });
      },
    );

    app.get(
      '/admin/dead-letters',
      {
        onRequest: operator,
        schema: {
          ...operatorRoute,
          tags: ['dead letters'],
          summary: 'Dead letters of tasks and events, newest first',
          description: `Filter by kind, source (a queue or a topic) and error code. ${OPERATOR_ONLY}`,
          querystring: DeadLetterQuery,
          response: { 200: DeadLetterList },
        },
      },
      async (request) => deps.desk.list(request.query),
    );

    app.get(
      '/admin/dead-letters/:id',
      {
        onRequest: operator,
        schema: {
          ...operatorRoute,
          tags: ['dead letters'],
          summary: 'One dead letter: payload, contract check, every attempt',
          description: `404 \`dashboard.dead_letter_not_found\` for an unknown id. ${OPERATOR_ONLY}`,
          params: DeadLetterParams,
          response: { 200: DeadLetterDetail, 404: ErrorBody },
        },
      },
      async (request) => deps.desk.get(request.params.id),
    );

    app.post(
      '/admin/dead-letters/:id/redrive',
      {
        onRequest: operator,
        schema: {
          ...operatorRoute,
          tags: ['dead letters'],
          summary: 'Redrive one dead letter',
          description: `404 \`dashboard.dead_letter_not_found\`; 409 \`dashboard.already_redriven\` when it was redriven within a day. ${OPERATOR_ONLY}`,
          params: DeadLetterParams,
          response: { 200: RedriveOutcome, 404: ErrorBody, 409: ErrorBody },
        },
      },
      async (request) => {
        await deps.desk.redrive(request.params.id, actorOf(request));
        return { redriven: [request.params.id], notFound: [], alreadyRedriven: [] };
      },
    );

    app.post(
      '/admin/dead-letters/redrive',
      {
        onRequest: operator,
        schema: {
          ...operatorRoute,
          tags: ['dead letters'],
          summary: 'Redrive the selected dead letters, or all of a kind (and source)',
          description: `\`{ ids }\` or \`{ kind, source? }\`; the answer says what became of each id. ${OPERATOR_ONLY}`,
          body: BulkRedriveBody,
          response: { 200: RedriveOutcome },
        },
      },
      async (request) => {
        const body = request.body;
        return 'ids' in body ? deps.desk.redriveMany(body.ids, actorOf(request)) : deps.desk.redriveAll(body, actorOf(request));
      },
    );

    app.post(
      '/admin/dead-letters/:id/discard',
      {
        onRequest: operator,
        schema: {
          ...operatorRoute,
          tags: ['dead letters'],
          summary: 'Discard a dead letter for good',
          description: `The body repeats the id (\`{ "confirm": id }\`), else 400 \`dashboard.confirmation_mismatch\`; 404 for an unknown id. ${OPERATOR_ONLY}`,
          params: DeadLetterParams,
          body: DiscardBody,
          response: { 200: DiscardOutcome, 400: ErrorBody, 404: ErrorBody },
        },
      },
      async (request) => {
        await deps.desk.discard(request.params.id, request.body.confirm, actorOf(request));
        return { discarded: request.params.id };
      },
    );

    app.get(
      '/admin/activity',
      {
        onRequest: operator,
        schema: {
          ...operatorRoute,
          tags: ['activity'],
          summary: "Operators' actions (dashboard and ops CLI), newest first",
          description: OPERATOR_ONLY,
          querystring: ActivityQuery,
          response: { 200: ActivityList },
        },
      },
      async (request) => ({ items: await deps.activity.list(request.query.limit) }),
    );

    if (deps.webRoot) {
      // The page itself is public (it holds no data); everything it shows comes from /admin.
      await app.register(fastifyStatic, { root: deps.webRoot, prefix: '/', index: ['index.html'], wildcard: false });
    } else {
      app.get('/', { schema: { hide: true } }, async (_request, reply) =>
        reply
          .type('text/plain; charset=utf-8')
          .send('The CivilDIY dashboard API is under /admin (see /docs). Its web page is not built (dashboard/dist/web is missing).\n'),
      );
    }
  };
}
