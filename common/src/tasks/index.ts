/**
 * `@civildiy/common/tasks`: the task queue (BullMQ on Redis). Contracts come from `defineTask`;
 * producers use {@link TaskClient}, consumers {@link TaskWorker}; plus dead letters, chains,
 * schedules and Prometheus metrics.
 */
export * from './define.ts';
export { TaskClient, type TaskClientOptions, type EnqueueItem } from './task-client.ts';
export { TaskWorker, type TaskWorkerOptions, type TaskWorkerCloseOptions, type TaskHandler, type TaskHandlerContext } from './task-worker.ts';
export { DeadLetters, type DeadLetter, type DeadLetterSummary, type DeadLetterPage } from './dead-letters.ts';
export { chain, type ChainFirstStep, type ChainNextStep, type ChainOptions } from './chain.ts';
export { schedule, unschedule, type ScheduleOptions } from './schedule.ts';
export { computeBackoffMs, type BackoffPolicy } from './backoff.ts';
export { deferralOf } from './deferral.ts';
export { TaskFailedError } from './task-failed-error.ts';
export { TaskTimeoutError } from './task-timeout-error.ts';
export { taskMetrics, DEPTH_STATES, DURATION_BUCKETS, type TaskMetrics, type TaskOutcome, type QueueDepthSource, type AttemptSeries } from './metrics.ts';
export { BACKOFF_STRATEGY, jobOptionsFor, parseAttemptRecord, parseTaskInput, type TaskJobData, type AttemptRecord } from './job-data.ts';
export type { TaskConnection } from './connection.ts';
