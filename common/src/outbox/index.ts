export { outboxTable, inboxTable, type OutboxRow } from './schema.ts';
export { outbox, type OutboxTaskPayload } from './outbox-writer.ts';
export { watchOutboxCommits } from './outbox-commits.ts';
export { OutboxRelay, type OutboxRelayOptions } from './outbox-relay.ts';
export { RelayLoop, type RelayLoopOptions, type RelayPass, type RelayPassResult } from './relay-loop.ts';
export { OutboxFailedRows, type FailedOutboxRow } from './outbox-failed-rows.ts';
export { outboxMetrics, type OutboxMetrics, type OutboxCounter, type OutboxCounts } from './outbox-metrics.ts';
export { processOnce, inboxCleanup } from './inbox.ts';
export { InboxBatcher, type InboxBatcherOptions, type InboxOutcome } from './inbox-batcher.ts';
