import { z } from 'zod';
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from '@civildiy/common/service';
import { FeedItem } from './feed-item.ts';
import type { FeedReader } from './feed-reader.ts';
import { RebuildStarted, RebuildState, type RebuildRunner } from './rebuild-runner.ts';

const PageQuery = z.object({
  cursor: z.string().optional().describe('`nextCursor` of the previous page; omit (or leave empty) for the newest posts'),
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('items per page, 1 to 100'),
});
const FeedPage = z.object({ items: z.array(FeedItem), nextCursor: z.string().nullable() });

/** Sends a page the reader already serialised (Fastify passes a JSON string through as is). */
function sendJson(reply: FastifyReply, json: string) {
  return reply.type('application/json; charset=utf-8').send(json);
}

const OPERATOR_ONLY = 'Operators only: 401 without a valid token, 403 `auth.role_required` without the operator role.';

/** Every HTTP route of feed-service: public reads of the Redis read model, and its rebuild for operators. */
export function feedApi(deps: { reader: FeedReader; rebuilds: RebuildRunner }): FastifyPluginAsyncZod {
  return async (app) => {
    const operator = app.requireRole('operator');

    app.get(
      '/feed',
      {
        schema: {
          tags: ['feed'],
          summary: 'The global activity feed, newest first',
          description: 'The newest 1,000 posts of everyone. A cursor this feed did not return is a 400 `feed.invalid_cursor`.',
          querystring: PageQuery,
          response: { 200: FeedPage },
        },
      },
      async (request, reply) => {
        const { cursor, limit } = request.query;
        return sendJson(reply, await deps.reader.pageJson({ limit, ...(cursor ? { cursor } : {}) }));
      },
    );

    app.get(
      '/feed/users/:userId',
      {
        schema: {
          tags: ['feed'],
          summary: "One author's activity feed, newest first",
          description: "The author's newest 100 posts (empty for an unknown user). A cursor this feed did not return is a 400 `feed.invalid_cursor`.",
          params: z.object({ userId: z.uuid() }),
          querystring: PageQuery,
          response: { 200: FeedPage },
        },
      },
      async (request, reply) => {
        const { cursor, limit } = request.query;
        return sendJson(reply, await deps.reader.pageJson({ userId: request.params.userId, limit, ...(cursor ? { cursor } : {}) }));
      },
    );

    app.post(
      '/feed/rebuild',
      {
        onRequest: operator,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['rebuild'],
          summary: 'Rebuild the read model from the event streams, or resume an interrupted rebuild',
          description:
            'Runs in the background of this feed-service process: the feed keeps serving the current generation until the new ' +
            'one has caught up, then swaps (as `npm run feed:rebuild`). Answers once the rebuild is marked; follow it with GET. ' +
            `One already running in this process → 409 \`feed.rebuild_running\`. ${OPERATOR_ONLY}`,
          response: { 202: RebuildStarted },
        },
      },
      async (request, reply) => reply.status(202).send(await deps.rebuilds.start(request.log)),
    );

    app.get(
      '/feed/rebuild',
      {
        onRequest: operator,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['rebuild'],
          summary: 'Where the rebuild stands: the marked one, the progress of the one running here and how the last one ended',
          description: OPERATOR_ONLY,
          response: { 200: RebuildState },
        },
      },
      async () => deps.rebuilds.state(),
    );

    app.delete(
      '/feed/rebuild',
      {
        onRequest: operator,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['rebuild'],
          summary: 'Abort the rebuild: stop it if it runs here, and drop its generation',
          description: `The feed keeps serving the current generation. No rebuild in progress → 404 \`feed.rebuild_not_found\`. ${OPERATOR_ONLY}`,
          response: { 200: z.object({ aborted: z.number().int().describe('the generation dropped') }) },
        },
      },
      async (request) => deps.rebuilds.abort(request.log),
    );
  };
}
