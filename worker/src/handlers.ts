import type { Logger } from '@civildiy/common';
import { processOrder as processOrderTask } from '@civildiy/common/contracts';
import type { EventPublisher } from '@civildiy/common/events';
import type { TaskWorker } from '@civildiy/common/tasks';
import { processOrder, type PaymentGateway } from './order-processing.ts';

/** What the worker's task handlers need. */
export interface WorkerHandlerDeps {
  payments: PaymentGateway;
  events: EventPublisher;
  logger: Logger;
}

/** Registers every task this worker can run; `WORKER_QUEUES` decides which queues it consumes. */
export function registerHandlers(worker: TaskWorker, deps: WorkerHandlerDeps): void {
  worker.handle(processOrderTask, (order, ctx) => processOrder({ ...deps, logger: ctx.logger }, order, ctx.signal));
}
