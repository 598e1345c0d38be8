import { expirePosts } from '@civildiy/common/contracts';
import { schedule, type TaskClient, type TaskWorker } from '@civildiy/common/tasks';
import { removeExpiredPosts } from './posts.ts';
import type { PostsStore } from './posts-store.ts';

/** The id of posts-service's recurring `posts.expire` (every instance upserts the same one). */
export const EXPIRY_SCHEDULE_ID = 'posts-service.expire';

/** Runs `posts.expire` on this process's task worker. */
export function handleExpiryTasks(deps: { worker: TaskWorker; store: PostsStore }): void {
  deps.worker.handle(expirePosts, async (input, ctx) => {
    const deleted = await removeExpiredPosts(deps.store, { limit: input.limit });
    if (deleted > 0) ctx.logger.info({ deleted }, 'expired posts removed');
    return { deleted };
  });
}

/** Creates or replaces the recurring `posts.expire` run, every `everyMs`. */
export async function scheduleExpiry(tasks: TaskClient, everyMs: number): Promise<void> {
  await schedule(tasks, expirePosts, { id: EXPIRY_SCHEDULE_ID, everyMs, input: {} });
}
