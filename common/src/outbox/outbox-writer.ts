import type { z } from 'zod';
import { currentContext, type RequestContext } from '../context/index.ts';
import type { DbExecutor } from '../db/index.ts';
import { createEnvelope, type EnvelopeOptions, type EventDefinition } from '../events/define.ts';
import { derivedId, newId } from '../ids/index.ts';
import type { EnqueueOptions, TaskDefinition, TaskInput } from '../tasks/define.ts';
import { outboxWritten } from './outbox-commits.ts';
import { outboxTable } from './schema.ts';

/** What a task row's `payload` holds. */
export interface OutboxTaskPayload {
  /** The validated task input. */
  input: unknown;
  /** The enqueue options (never without `idempotencyKey`; `context` is kept apart). */
  options: Omit<EnqueueOptions, 'context'> & { idempotencyKey: string };
  /** The context captured when the row was written. */
  context: RequestContext;
}

/**
 * Writes an event into the outbox inside the caller's transaction. The envelope is built now
 * (validated, with the current correlation id, causation id and actor) and published later, as is,
 * by the relay. Returns the row id, which is the envelope id.
 *
 * With `options.id` (a derived id) a second write of the same event is a no-op.
 */
async function writeEvent<E extends EventDefinition>(
  tx: DbExecutor,
  event: E,
  data: z.input<E['data']>,
  options: EnvelopeOptions = {},
): Promise<string> {
  const envelope = createEnvelope(event, data, options);
  await tx
    .insert(outboxTable)
    .values({ id: envelope.id, kind: 'event', name: envelope.type, destination: envelope.topic, key: envelope.key, payload: envelope })
    .onConflictDoNothing({ target: outboxTable.id });
  outboxWritten(tx);
  return envelope.id;
}

/**
 * Writes a task into the outbox inside the caller's transaction; the relay enqueues it after the
 * commit. The input is validated now (a bad input throws here, rolling the transaction back), and
 * the context (`options.context`, default the current one) is captured.
 *
 * Idempotency: with `options.idempotencyKey` the row id is derived from task name + key (a second
 * write is a no-op); without one the new row id becomes the idempotency key, so a relay that
 * enqueues the row twice (crash between enqueue and marking it sent) never runs it twice.
 * `options.delayMs` counts from the write, not from the relay's enqueue. Returns the row id.
 */
async function writeTask<T extends TaskDefinition>(
  tx: DbExecutor,
  task: T,
  input: TaskInput<T>,
  options: EnqueueOptions = {},
): Promise<string> {
  const parsed: unknown = task.input.parse(input);
  const { context: givenContext, ...enqueueOptions } = options;
  const captured = givenContext ?? currentContext();
  const context: RequestContext = captured ? { ...captured } : { correlationId: newId() };
  const id = options.idempotencyKey === undefined ? newId() : derivedId('outbox-task', task.name, options.idempotencyKey);
  const idempotencyKey = options.idempotencyKey ?? id;
  const payload: OutboxTaskPayload = { input: parsed, options: { ...enqueueOptions, idempotencyKey }, context };
  await tx
    .insert(outboxTable)
    .values({ id, kind: 'task', name: task.name, destination: task.queue, key: idempotencyKey, payload })
    .onConflictDoNothing({ target: outboxTable.id });
  outboxWritten(tx);
  return id;
}

/**
 * Writing to the transactional outbox. Call inside the transaction that changes the domain rows:
 *
 * ```ts
 * await db.transaction(async (tx) => {
 *   await tx.insert(posts).values(post);
 *   await outbox.event(tx, postCreated, snapshot);
 *   await outbox.task(tx, searchEmbed, { postId: post.id });
 * });
 * ```
 *
 * Under the runtime the relay delivers right after the commit (`watchOutboxCommits`); nothing to wake by hand.
 */
export const outbox = {
  event: writeEvent,
  task: writeTask,
} as const;
