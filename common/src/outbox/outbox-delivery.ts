import { z } from 'zod';
import { isPermanentError, ValidationError } from '../errors/index.ts';
import { EventEnvelope, type EnvelopePublisher } from '../events/define.ts';
import { findTask, type TaskEnqueuer } from '../tasks/define.ts';
import type { OutboxTaskPayload } from './outbox-writer.ts';
import type { OutboxRow } from './schema.ts';

/**
 * A row that can never be delivered as it is: retrying cannot help, an operator has to fix the
 * cause (deploy the task's contract, correct the data) and redrive it. `code` says why.
 */
export class UndeliverableRowError extends Error {
  override readonly name = 'UndeliverableRowError';

  constructor(
    message: string,
    /** `outbox.unknown_task`, `outbox.invalid_input`, `outbox.invalid_envelope` or the broker's permanent error code. */
    readonly code: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
  }
}

/** Raised when one delivery took longer than the relay allows; the row is retried after backoff. */
export class DeliveryTimeoutError extends Error {
  override readonly name = 'DeliveryTimeoutError';

  constructor(readonly timeoutMs: number) {
    super(`The broker did not take the message within ${timeoutMs} ms`);
  }
}

/**
 * Hands one outbox row to the broker: an event row to the {@link EnvelopePublisher} as it was written,
 * a task row to the {@link TaskEnqueuer} with its idempotency key and captured context. Tells a row
 * that can never be delivered ({@link UndeliverableRowError}) from a failure worth retrying (any
 * other error).
 */
export class OutboxDelivery {
  constructor(
    private readonly publisher: EnvelopePublisher,
    private readonly tasks: TaskEnqueuer | undefined,
  ) {}

  /**
   * Delivers `row`, giving up after `timeoutMs` ({@link DeliveryTimeoutError}; the broker call itself
   * cannot be cancelled and may still land, which at-least-once delivery allows).
   * @throws UndeliverableRowError when the row can never be delivered as it is.
   */
  async deliver(row: OutboxRow, timeoutMs: number): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      await untilAborted(this.send(row), signal);
    } catch (error) {
      if (signal.aborted && error === signal.reason) throw new DeliveryTimeoutError(timeoutMs);
      if (error instanceof UndeliverableRowError) throw error;
      if (isPermanentError(error) || error instanceof ValidationError) {
        throw new UndeliverableRowError(error.message, error.code, { cause: error });
      }
      throw error;
    }
  }

  private async send(row: OutboxRow): Promise<void> {
    if (row.kind === 'event') {
      const envelope = EventEnvelope.safeParse(row.payload);
      if (!envelope.success) throw new UndeliverableRowError(`Invalid event envelope: ${z.prettifyError(envelope.error)}`, 'outbox.invalid_envelope');
      await this.publisher.publishEnvelope(row.payload as EventEnvelope);
      return;
    }
    if (!this.tasks) throw new Error(`This relay has no task queue, so task "${row.name}" cannot be enqueued`);
    const task = findTask(row.name);
    if (!task) throw new UndeliverableRowError(`Unknown task "${row.name}": its contract is not loaded in this process`, 'outbox.unknown_task');
    const { input, options, context } = row.payload as OutboxTaskPayload;
    const checked = task.input.safeParse(input);
    if (!checked.success) {
      throw new UndeliverableRowError(`Invalid input for task ${task.name}: ${z.prettifyError(checked.error)}`, 'outbox.invalid_input');
    }
    const enqueueOptions = { ...options, context };
    // The delay counts from the write, not from this (possibly much later) enqueue.
    if (options.delayMs !== undefined) enqueueOptions.delayMs = Math.max(0, options.delayMs - (Date.now() - row.createdAt.getTime()));
    await this.tasks.enqueue(task, input, enqueueOptions);
  }
}

/** Settles like `work`, or rejects with `signal.reason` once `signal` aborts first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
