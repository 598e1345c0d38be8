import { z } from 'zod';
import { requireUser, type FastifyPluginAsyncZod } from '@civildiy/common/service';
import { CreatePost, PostSnapshot, Tag, UpdatePost } from '@civildiy/common/contracts';
import { etagOf, parseIfMatch } from './etag.ts';
import { createPost, deletePost, getPost, listPosts, updatePost } from './posts.ts';
import { toSnapshot, type PostsStore } from './posts-store.ts';

const IdempotencyKey = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');
const PostParams = z.object({ id: z.uuid() });
const IfMatchHeaders = z.object({ 'if-match': z.string().max(200).optional() });
const ErrorReply = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) });
const protectedRoute = { security: [{ bearerAuth: [] }] };
const writeErrors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 412: ErrorReply };

/** Every HTTP route of posts-service. */
export function postsApi(deps: { store: PostsStore }): FastifyPluginAsyncZod {
  const { store } = deps;
  return async (app) => {
    app.post(
      '/posts',
      {
        onRequest: app.authenticate,
        schema: {
          ...protectedRoute,
          tags: ['posts'],
          summary: 'Publish a post',
          description: 'With `Idempotency-Key`, a repeat returns the first post (200); the same key with another body is a 409.',
          headers: z.object({ 'idempotency-key': IdempotencyKey.optional() }),
          body: CreatePost,
          response: { 200: PostSnapshot, 201: PostSnapshot, 400: ErrorReply, 401: ErrorReply, 409: ErrorReply },
        },
      },
      async (request, reply) => {
        const user = requireUser(request);
        const { post, created } = await createPost(store, { author: user, input: request.body, idempotencyKey: request.headers['idempotency-key'] });
        if (!created) reply.header('idempotent-replayed', 'true');
        return reply
          .status(created ? 201 : 200)
          .header('location', `/posts/${post.id}`)
          .header('etag', etagOf(post.version))
          .send(toSnapshot(post));
      },
    );

    app.get(
      '/posts/:id',
      { schema: { tags: ['posts'], summary: 'One post (ETag = its version)', params: PostParams, response: { 200: PostSnapshot, 404: ErrorReply } } },
      async (request, reply) => {
        const post = await getPost(store, request.params.id);
        return reply.header('etag', etagOf(post.version)).send(toSnapshot(post));
      },
    );

    app.get(
      '/posts',
      {
        schema: {
          tags: ['posts'],
          summary: 'Posts, newest first, optionally by author and/or tag',
          description: 'Pass `nextCursor` back as `cursor` for the next page; it is `null` on the last page.',
          querystring: z.object({
            author: z.uuid().optional(),
            tag: Tag.optional(),
            cursor: z.string().optional(),
            limit: z.coerce.number().int().min(1).max(100).default(20),
          }),
          response: { 200: z.object({ items: z.array(PostSnapshot), nextCursor: z.string().nullable() }), 400: ErrorReply },
        },
      },
      async (request) => {
        const { author, tag, cursor, limit } = request.query;
        const page = await listPosts(store, { authorId: author, tag, cursor, limit });
        return { items: page.items.map(toSnapshot), nextCursor: page.nextCursor };
      },
    );

    app.patch(
      '/posts/:id',
      {
        onRequest: app.authenticate,
        schema: {
          ...protectedRoute,
          tags: ['posts'],
          summary: 'Edit my post (author only; If-Match: a version → 412 when stale)',
          params: PostParams,
          headers: IfMatchHeaders,
          body: UpdatePost,
          response: { 200: PostSnapshot, ...writeErrors },
        },
      },
      async (request, reply) => {
        const post = await updatePost(store, {
          id: request.params.id,
          writer: requireUser(request),
          patch: request.body,
          ifMatch: parseIfMatch(request.headers['if-match']),
        });
        return reply.header('etag', etagOf(post.version)).send(toSnapshot(post));
      },
    );

    app.delete(
      '/posts/:id',
      {
        onRequest: app.authenticate,
        schema: {
          ...protectedRoute,
          tags: ['posts'],
          summary: 'Delete my post (author only; If-Match: a version → 412 when stale)',
          params: PostParams,
          headers: IfMatchHeaders,
          response: { 204: z.null(), ...writeErrors },
        },
      },
      async (request, reply) => {
        await deletePost(store, { id: request.params.id, writer: requireUser(request), ifMatch: parseIfMatch(request.headers['if-match']) });
        return reply.status(204).send(null);
      },
    );
  };
}
