/**
 * The dashboard API's types, inferred from the server's zod schemas (`dashboard/src/contract.ts`).
 * Type-only imports: nothing of the server (nor zod) ends up in the page's bundle.
 */
import type { z } from 'zod';
import type * as contract from '../../src/contract.ts';

export type OperatorSession = z.infer<typeof contract.OperatorSession>;
export type SignInBody = z.infer<typeof contract.SignInBody>;
export type RefreshBody = z.infer<typeof contract.RefreshBody>;
export type Light = z.infer<typeof contract.Light>;
export type ServiceStatus = z.infer<typeof contract.ServiceStatus>;
export type QueueStatus = z.infer<typeof contract.QueueStatus>;
export type TaskTiming = z.infer<typeof contract.TaskTiming>;
export type StreamStatus = z.infer<typeof contract.StreamStatus>;
export type GroupStatus = z.infer<typeof contract.GroupStatus>;
export type DeadLetterKind = z.infer<typeof contract.DeadLetterKind>;
export type DeadLetterSummary = z.infer<typeof contract.DeadLetterSummary>;
export type DeadLetterDetail = z.infer<typeof contract.DeadLetterDetail>;
export type DeadLetterList = z.infer<typeof contract.DeadLetterList>;
export type Attempt = z.infer<typeof contract.Attempt>;
export type BulkRedriveBody = z.infer<typeof contract.BulkRedriveBody>;
export type RedriveOutcome = z.infer<typeof contract.RedriveOutcome>;
export type DiscardBody = z.infer<typeof contract.DiscardBody>;
export type DiscardOutcome = z.infer<typeof contract.DiscardOutcome>;
export type ActivityList = z.infer<typeof contract.ActivityList>;
export type Activity = z.infer<typeof contract.Activity>;
export type SeriesName = z.infer<typeof contract.SeriesName>;
export type History = z.infer<typeof contract.History>;
export type HistoryPoint = z.infer<typeof contract.HistoryPoint>;
export type Overview = z.infer<typeof contract.Overview>;
