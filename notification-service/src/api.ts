import { z } from 'zod';
import { requireUser, type FastifyPluginAsyncZod } from '@civildiy/common/service';
import type { Database } from '@civildiy/common/db';
import { listNotifications } from './notifications.ts';
import type * as schema from './db/schema.ts';

const Notification = z.object({
  id: z.uuid(),
  template: z.string(),
  channel: z.string(),
  recipient: z.string(),
  subject: z.string(),
  body: z.string(),
  status: z.enum(['pending', 'delivered']),
  attempts: z.number().int(),
  createdAt: z.string(),
  deliveredAt: z.string().nullable(),
});

/** Every HTTP route of notification-service. */
export function notificationsApi(deps: { db: Database<typeof schema> }): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/notifications',
      {
        onRequest: app.authenticate,
        schema: {
          security: [{ bearerAuth: [] }],
          tags: ['notifications'],
          summary: 'My notifications, newest first',
          querystring: z.object({ cursor: z.string().max(200).optional(), limit: z.coerce.number().int().min(1).max(100).default(20) }),
          response: { 200: z.object({ items: z.array(Notification), nextCursor: z.string().nullable() }) },
        },
      },
      async (request) =>
        listNotifications(deps.db, requireUser(request).id, { limit: request.query.limit, ...(request.query.cursor ? { cursor: request.query.cursor } : {}) }),
    );
  };
}
