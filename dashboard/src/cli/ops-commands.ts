import { AppError } from '@civildiy/common';
import type { DeadLetterDetail, DeadLetterSummary, QueueStatus } from '../contract.ts';
import type { RedriveOutcome } from '../dead-letter-desk.ts';
import type { OpsContext } from './ops-context.ts';
import { clip, textTable } from './text-table.ts';

/** What a command gets from the command line. */
export interface CommandInput {
  /** The arguments after the command's name (ids). */
  args: string[];
  kind?: string | undefined;
  source?: string | undefined;
  code?: string | undefined;
  limit?: string | undefined;
  json: boolean;
  all: boolean;
  yes: boolean;
}

/** Exit codes: done; a dead letter not found, already redriven or refused; a usage error. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** A mistake in the command line: printed with the usage, exit 2. */
export class UsageError extends Error {}

type Print = (text: string) => void;

function kindOf(input: CommandInput): 'task' | 'event' | undefined {
  if (input.kind === undefined) return undefined;
  if (input.kind !== 'task' && input.kind !== 'event') throw new UsageError(`--kind is task or event, not "${input.kind}"`);
  return input.kind;
}

function limitOf(input: CommandInput): number {
  if (input.limit === undefined) return 100;
  const limit = Number(input.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) throw new UsageError('--limit is a whole number from 1 to 1000');
  return limit;
}

/** `dead-letters list [--kind task|event] [--source x] [--code y] [--limit n] [--json]` */
export async function listDeadLetters(ops: OpsContext, input: CommandInput, print: Print): Promise<number> {
  const page = await ops.desk.list({ kind: kindOf(input), source: input.source, code: input.code, limit: limitOf(input) });
  if (input.json) {
    print(JSON.stringify(page, null, 2));
    return EXIT.ok;
  }
  if (page.items.length === 0) {
    print('No dead letters.');
    return EXIT.ok;
  }
  const row = (item: DeadLetterSummary) => [item.id, item.name, item.group ?? '', item.errorCode, String(item.attempts), item.failedAt, clip(item.errorMessage, 60)];
  print(textTable(['ID', 'NAME', 'GROUP', 'CODE', 'ATTEMPTS', 'FAILED AT', 'ERROR'], page.items.map(row)));
  print(`${page.items.length} of ${page.total} dead letter${page.total === 1 ? '' : 's'}`);
  return EXIT.ok;
}

/** `dead-letters show <id> [--json]` */
export async function showDeadLetter(ops: OpsContext, input: CommandInput, print: Print): Promise<number> {
  const [id, ...rest] = input.args;
  if (id === undefined || rest.length > 0) throw new UsageError('dead-letters show takes one id');
  const letter = await ops.desk.get(id);
  if (input.json) {
    print(JSON.stringify(letter, null, 2));
    return EXIT.ok;
  }
  print(describe(letter));
  return EXIT.ok;
}

function describe(letter: DeadLetterDetail): string {
  const fields: [string, string][] = [
    ['id', letter.id],
    ['kind', letter.kind],
    ['source', letter.source],
    ['name', letter.name],
    ...(letter.group ? [['group', letter.group] as [string, string]] : []),
    ['error', `${letter.errorCode}: ${letter.errorMessage}`],
    ['failed at', letter.failedAt],
    ['correlation', letter.correlationId ?? '-'],
    ['contract', `${letter.contract.status}${letter.contract.issues.length > 0 ? ` (${letter.contract.issues.join('; ')})` : ''}`],
  ];
  const attempts = textTable(
    ['ATTEMPT', 'AT', 'WORKER', 'CODE', 'MESSAGE'],
    letter.attemptsLog.map((attempt) => [String(attempt.attempt), attempt.at, attempt.worker ?? '', attempt.code, clip(attempt.message, 80)]),
  );
  return [...fields.map(([name, value]) => `${`${name}:`.padEnd(13)}${value}`), '', 'payload:', JSON.stringify(letter.payload, null, 2), '', attempts].join('\n');
}

/** `dead-letters redrive <id…>` or `dead-letters redrive --all --kind task|event [--source s]` */
export async function redriveDeadLetters(ops: OpsContext, input: CommandInput, print: Print): Promise<number> {
  let outcome: RedriveOutcome;
  if (input.all) {
    const kind = kindOf(input);
    if (kind === undefined || input.args.length > 0) throw new UsageError('dead-letters redrive --all needs --kind task|event (and no ids)');
    outcome = await ops.desk.redriveAll({ kind, source: input.source }, ops.actor);
  } else {
    if (input.args.length === 0) throw new UsageError('dead-letters redrive takes ids, or --all --kind task|event');
    outcome = await ops.desk.redriveMany(input.args, ops.actor);
  }
  if (input.json) print(JSON.stringify(outcome, null, 2));
  else {
    for (const id of outcome.redriven) print(`redriven          ${id}`);
    for (const id of outcome.alreadyRedriven) print(`already redriven  ${id}`);
    for (const id of outcome.notFound) print(`not found         ${id}`);
    if (input.all && outcome.redriven.length === 0) print('No dead letters to redrive.');
  }
  return outcome.notFound.length + outcome.alreadyRedriven.length > 0 ? EXIT.failed : EXIT.ok;
}

/** `dead-letters discard <id> --yes` */
export async function discardDeadLetter(ops: OpsContext, input: CommandInput, print: Print): Promise<number> {
  const [id, ...rest] = input.args;
  if (id === undefined || rest.length > 0) throw new UsageError('dead-letters discard takes one id');
  if (!input.yes) throw new UsageError(`discarding deletes ${id} for good: add --yes to confirm`);
  await ops.desk.discard(id, id, ops.actor);
  print(input.json ? JSON.stringify({ discarded: id }) : `discarded  ${id}`);
  return EXIT.ok;
}

/** `queues [--json]` */
export async function showQueues(ops: OpsContext, input: CommandInput, print: Print): Promise<number> {
  const queues = await ops.queues.read();
  if (input.json) {
    print(JSON.stringify(queues, null, 2));
    return EXIT.ok;
  }
  const row = (queue: QueueStatus) => [
    queue.queue,
    String(queue.counts.waiting),
    String(queue.counts.active),
    String(queue.counts.delayed),
    String(queue.counts.failed),
    String(queue.counts.completed),
    String(queue.workers),
    queue.oldestWaitingAgeSeconds === null ? '-' : `${queue.oldestWaitingAgeSeconds} s`,
  ];
  print(textTable(['QUEUE', 'WAITING', 'ACTIVE', 'DELAYED', 'DEAD LETTERS', 'COMPLETED', 'WORKERS', 'OLDEST WAITING'], queues.map(row)));
  return EXIT.ok;
}

/** A refusal of the desk (unknown id, already redriven, bad confirmation) as one line for the terminal. */
export function refusal(error: unknown): string | undefined {
  return error instanceof AppError && error.statusCode < 500 ? `${error.message} (${error.code})` : undefined;
}
