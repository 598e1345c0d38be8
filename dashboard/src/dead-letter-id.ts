import { ValidationError } from '@civildiy/common';
import { DeadLetterId } from './contract.ts';

/** A dead letter's address: the kind, its queue or topic, and its id there (a job id, an event dead letter id). */
export interface DeadLetterAddress {
  kind: 'task' | 'event';
  source: string;
  localId: string;
}

/** `task:<queue>:<jobId>` or `event:<topic>:<dead letter id>`. */
export function formatDeadLetterId(address: DeadLetterAddress): string {
  return `${address.kind}:${address.source}:${address.localId}`;
}

/**
 * Reads a dead letter id.
 * @throws ValidationError (400 `dashboard.invalid_dead_letter_id`) when it is not one.
 */
export function parseDeadLetterId(id: string): DeadLetterAddress {
  if (!DeadLetterId.safeParse(id).success) {
    throw new ValidationError(`"${id}" is not a dead letter id (task:<queue>:<id> or event:<topic>:<id>)`, 'dashboard.invalid_dead_letter_id');
  }
  const first = id.indexOf(':');
  const second = id.indexOf(':', first + 1);
  return { kind: id.slice(0, first) as DeadLetterAddress['kind'], source: id.slice(first + 1, second), localId: id.slice(second + 1) };
}
