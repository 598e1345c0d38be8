import { z } from 'zod';
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from '@civildiy/common/service';
import { FeedItem } from './feed-item.ts';
import type { FeedReader } from './feed-reader.ts';

const PageQuery = z.object({
  cursor: z.string().optional().describe('`nextCursor` of the previous page; omit (or leave empty) for the newest posts'),
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('items per page, 1 to 100'),
});
const FeedPage = z.object({ items: z.array(FeedItem), nextCursor: z.string().nullable() });

/** Sends a page the reader already serialised (Fastify passes a JSON string through as is). */
function sendJson(reply: FastifyReply, json: string) {
  return reply.type('application/json; charset=utf-8').send(json);
}

/** Every HTTP route of feed-service: public reads of the Redis read model. */
export function feedApi(deps: { reader: FeedReader }): FastifyPluginAsyncZod {
  return async (app) => {
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
  };
}
