import { z } from 'zod';
import { NotFoundError } from '@civildiy/common';
import type { FastifyPluginAsyncZod } from '@civildiy/common/service';
import { Tag } from '@civildiy/common/contracts';
import { indexStatus } from './index-status.ts';
import { redriveFailed } from './index-queue.ts';
import { ReindexAnswer, type ReindexControl } from './reindex-control.ts';
import type { SemanticSearch } from './semantic-search.ts';
import type { SearchDb } from './search-state.ts';

const SearchHit = z.object({
  postId: z.uuid(),
  title: z.string(),
  excerpt: z.string(),
  authorId: z.uuid(),
  authorUsername: z.string().nullable(),
  tags: z.array(z.string()),
  score: z.number().describe('1 − cosine distance between the query and the post'),
  version: z.number().int().describe('the post version the result was indexed from'),
  createdAt: z.string(),
});
const SearchResults = z.object({ items: z.array(SearchHit) });

const NearestQuery = z.object({
  limit: z.coerce.number().int().min(1).max(50).default(10).describe('results, 1 to 50'),
  tag: Tag.optional().describe('only posts with this tag'),
  exact: z
    .enum(['true', 'false'])
    .default('false')
    .transform((value) => value === 'true')
    .describe('diagnostic: scan every vector instead of the HNSW index (exact, slower)'),
});

const OPERATOR_ONLY = 'Operators only: 401 without a valid token, 403 `auth.role_required` without the operator role.';

const StatusCounts = z.object({ pending: z.number().int(), claimed: z.number().int(), done: z.number().int(), failed: z.number().int() });
const IndexStatus = z.object({
  activeGeneration: z.number().int(),
  model: z.string().nullable().describe('the model of the vectors searches read (and queries are embedded with)'),
  dimensions: z.number().int().nullable().describe('their dimension'),
  counts: StatusCounts.describe('rows of the active generation by status'),
  reindex: z
    .object({ generation: z.number().int(), model: z.string().nullable(), dimensions: z.number().int().nullable(), startedAt: z.string().nullable(), counts: StatusCounts })
    .nullable(),
  failed: z.object({
    items: z.array(
      z.object({
        postId: z.uuid(),
        generation: z.number().int(),
        version: z.number().int(),
        title: z.string(),
        attempts: z.number().int(),
        lastError: z.string().nullable(),
        failedAt: z.string().nullable(),
      }),
    ),
    nextCursor: z.string().nullable(),
  }),
});

/** Every HTTP route of search-service. */
export function searchApi(deps: { db: SearchDb; search: SemanticSearch; onRedriven: () => void; reindex: ReindexControl }): FastifyPluginAsyncZod {
  return async (app) => {
    const operator = app.requireRole('operator');

    app.get(
      '/search',
      {
        schema: {
          tags: ['search'],
          summary: 'Posts nearest in meaning to a text',
          description:
            'Embeds `q` (cached briefly) and returns the nearest posts by cosine distance over the HNSW index. ' +
            'The embeddings provider down → 503 `search.embeddings_unavailable`.',
          querystring: NearestQuery.extend({ q: z.string().trim().min(1).max(500).describe('the text to search for, 1 to 500 characters') }),
          response: { 200: SearchResults },
        },
      },
      async (request) => {
        const { q, ...options } = request.query;
        return { items: await deps.search.search(q, nearest(options)) };
      },
    );

    app.get(
      '/search/similar/:postId',
      {
        schema: {
          tags: ['search'],
          summary: 'Posts nearest in meaning to a post',
          description: 'The post itself is left out. A post that is not indexed (unknown, deleted, not yet embedded) → 404 `search.not_found`.',
          params: z.object({ postId: z.uuid() }),
          querystring: NearestQuery,
          response: { 200: SearchResults },
        },
      },
      async (request) => ({ items: await deps.search.similar(request.params.postId, nearest(request.query)) }),
    );

    app.get(
      '/search/index/status',
      {
        onRequest: operator,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['index'],
          summary: 'The index: rows by status, a reindex in progress, and the rows that failed',
          description: OPERATOR_ONLY,
          querystring: z.object({
            limit: z.coerce.number().int().min(1).max(100).default(20).describe('failed rows per page'),
            cursor: z.string().max(100).optional().describe('`failed.nextCursor` of the previous page'),
          }),
          response: { 200: IndexStatus },
        },
      },
      async (request) => indexStatus(deps.db, { limit: request.query.limit, ...(request.query.cursor ? { cursor: request.query.cursor } : {}) }),
    );

    app.post(
      '/search/index/failed/redrive',
      {
        onRequest: operator,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['index'],
          summary: 'Queue every failed row again',
          description: `Rows whose batch failed for good go back to pending (their last error stays visible until they are indexed). ${OPERATOR_ONLY}`,
          response: { 200: z.object({ redriven: z.number().int() }) },
        },
      },
      async (request) => {
        const redriven = await redriveFailed(deps.db);
        if (redriven > 0) deps.onRedriven();
        request.log.info({ redriven }, `redrive of the failed index rows: ${redriven} queued again`);
        return { redriven };
      },
    );

    app.post(
      '/search/index/reindex',
      {
        onRequest: operator,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['index'],
          summary: 'Start a reindex, or resume the one under way',
          description:
            'Re-embeds every indexed post into a new generation, with the configured model and dimension (`EMBEDDINGS_MODEL`, ' +
            '`EMBEDDINGS_DIMENSIONS`), while search keeps serving the current one, and switches once every row is done ' +
            `(\`npm run search:reindex\` does the same; search-service starts one itself when the configured model or dimension changed). Answers at once; follow it with GET. ${OPERATOR_ONLY}`,
          response: { 202: ReindexAnswer },
        },
      },
      async (request, reply) => reply.status(202).send(await deps.reindex.start(request.log)),
    );

    app.get(
      '/search/index/reindex',
      {
        onRequest: operator,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['index'],
          summary: 'Where the reindex stands',
          description: `\`building\` is null when no reindex is under way. ${OPERATOR_ONLY}`,
          response: { 200: ReindexAnswer },
        },
      },
      async () => deps.reindex.status(),
    );

    app.delete(
      '/search/index/reindex',
      {
        onRequest: operator,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['index'],
          summary: 'Abort the reindex under way',
          description: `Drops the generation being built; search never saw it. No reindex under way → 404 \`search.reindex_not_found\`. ${OPERATOR_ONLY}`,
          response: { 200: ReindexAnswer },
        },
      },
      async (request) => {
        const answer = await deps.reindex.abort(request.log);
        if (answer.aborted == null) throw new NotFoundError('No reindex is under way', 'search.reindex_not_found');
        return answer;
      },
    );
  };
}

function nearest(query: { limit: number; tag?: string | undefined; exact: boolean }) {
  return { limit: query.limit, exact: query.exact, ...(query.tag === undefined ? {} : { tag: query.tag }) };
}
