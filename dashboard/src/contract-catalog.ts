import * as contracts from '@civildiy/common/contracts';
import type { EventDefinition } from '@civildiy/common/events';
import type { TaskDefinition } from '@civildiy/common/tasks';
import type { z } from 'zod';

/** What the dashboard knows of the system's messages: every task and event of `@civildiy/common/contracts`. */
export interface ContractCatalog {
  tasks: readonly TaskDefinition[];
  events: readonly EventDefinition[];
  /** The task queues, in contract order, each once. */
  queues: readonly string[];
  /** The event topics, in contract order, each once. */
  topics: readonly string[];
}

const isTask = (value: unknown): value is TaskDefinition => typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'task';
const isEvent = (value: unknown): value is EventDefinition => typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'event';

/** The catalog of the contracts module as loaded (tests may pass their own definitions). */
export function contractCatalog(definitions: readonly unknown[] = Object.values(contracts)): ContractCatalog {
  const tasks = definitions.filter(isTask);
  const events = definitions.filter(isEvent);
  return {
    tasks,
    events,
    queues: [...new Set(tasks.map((task) => task.queue))],
    topics: [...new Set(events.map((event) => event.topic))],
  };
}

/** The outcome of checking a payload against its contract (the `ContractCheck` body). */
export interface ContractVerdict {
  status: 'valid' | 'invalid' | 'unknown';
  issues: string[];
}

/** Parses `payload` with `schema`; a schema that throws is reported, never rethrown. */
export function checkAgainst(schema: z.ZodType, payload: unknown): ContractVerdict {
  try {
    const parsed = schema.safeParse(payload);
    if (parsed.success) return { status: 'valid', issues: [] };
    return { status: 'invalid', issues: parsed.error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(payload)'}: ${issue.message}`) };
  } catch (error) {
    return { status: 'invalid', issues: [`the schema could not check it: ${error instanceof Error ? error.message : String(error)}`] };
  }
}
