import type { Logger } from '@civildiy/common';
import type { EventPublisher } from '@civildiy/common/events';
import { OutboxRelay, type OutboxRelayOptions } from '@civildiy/common/outbox';
import type { AuthDatabase } from './db/database.ts';

/**
 * auth-service produces one event, `user.registered`, through its outbox; it consumes none and
 * enqueues no tasks. A task row in its outbox would be a bug, so it fails (and stays pending).
 */
const noTasks: OutboxRelayOptions['tasks'] = {
  enqueue: (task) => Promise.reject(new Error(`auth-service enqueues no tasks (got ${task.name})`)),
};

/** The relay that publishes auth-service's outbox to the event bus. Start it; `wake()` it after a commit. */
export function createEventRelay(options: { db: AuthDatabase; publisher: EventPublisher; logger: Logger; pollIntervalMs?: number }): OutboxRelay {
  return new OutboxRelay({ db: options.db, publisher: options.publisher, tasks: noTasks, logger: options.logger, ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}) });
}
