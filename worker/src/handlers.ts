import type { Logger } from '@civildiy/common';
import { embedBatch, processOrder as processOrderTask } from '@civildiy/common/contracts';
import type { EnvelopePublisher } from '@civildiy/common/events';
import type { TaskWorker } from '@civildiy/common/tasks';
import { embedTextBatch, type TextEmbedder } from './batch-embedding.ts';
import { processOrder, type PaymentGateway } from './order-processing.ts';

/** What the worker's task handlers need; a task's handler is registered only when its part is given. */
export interface WorkerHandlerDeps {
  logger: Logger;
  /** `orders.process` (queue `orders`): the payments provider, and where `order.processed` is published. */
  orders?: { payments: PaymentGateway; events: EnvelopePublisher };
  /** `search.embed` (queue `embeddings`): the embeddings provider. */
  embeddings?: TextEmbedder;
}

/** Registers the tasks this worker can run with what it was given; `WORKER_QUEUES` decides which queues it consumes. */
export function registerHandlers(worker: TaskWorker, deps: WorkerHandlerDeps): void {
  const { orders, embeddings } = deps;
  if (orders) {
    worker.handle(processOrderTask, (order, ctx) => processOrder({ ...orders, logger: ctx.logger }, order, ctx.signal));
  }
  if (embeddings) {
    worker.handle(embedBatch, (batch, ctx) => embedTextBatch({ embeddings, logger: ctx.logger }, batch, ctx.signal));
  }
}
