import type { Queue } from 'bullmq';
import { ConflictError, NotFoundError, ValidationError } from '@civildiy/common';
import type { DeadLetter as EventDeadLetter, EventBusAdmin } from '@civildiy/common/events';
import type { Redis } from '@civildiy/common/redis';
import { parseAttemptRecord, type DeadLetter as TaskDeadLetter, type DeadLetterSummary as TaskDeadLetterSummary, type DeadLetters } from '@civildiy/common/tasks';
import type { ActivityLog, Actor } from './activity-log.ts';
import { checkAgainst, type ContractCatalog, type ContractVerdict } from './contract-catalog.ts';
import type { DeadLetterDetail, DeadLetterSummary } from './contract.ts';
import { formatDeadLetterId, parseDeadLetterId, type DeadLetterAddress } from './dead-letter-id.ts';

/** Dead letters looked at per queue or topic when listing (the newest of a queue, the oldest of a topic). */
export const SCAN_LIMIT = 1_000;
/** How long a redriven id is remembered (a second redrive is then a 409, not a 404). */
const REDRIVEN_TTL_SECONDS = 24 * 60 * 60;

/** What {@link DeadLetterDesk.list} filters by. */
export interface DeadLetterFilter {
  kind?: 'task' | 'event' | undefined;
  /** A queue or a topic. */
  source?: string | undefined;
  /** An error code. */
  code?: string | undefined;
  limit?: number | undefined;
}

/** What a bulk redrive did with each id. */
export interface RedriveOutcome {
  redriven: string[];
  notFound: string[];
  alreadyRedriven: string[];
}

/** Options of {@link DeadLetterDesk}. */
export interface DeadLetterDeskOptions {
  /** The queues and topics (only their dead letters are reachable) and the schemas of their messages. */
  catalog: ContractCatalog;
  /** The task queue's dead letters (`TaskClient.deadLetters`). */
  tasks: DeadLetters;
  /** The BullMQ queue of a name (`TaskClient.queue`), for the attempt logs. */
  queue: (name: string) => Queue;
  /** The event bus's admin port (any adapter). */
  events: EventBusAdmin;
  /** Where redriven ids are remembered (`<prefix>:dashboard:redriven:<id>`, a day). */
  redis: Redis;
  prefix: string;
  activity: ActivityLog;
}

/**
 * Dead letters of tasks and events in one place, for the dashboard's API and the ops CLI alike:
 * listed with filters, shown with the payload checked against its contract and every attempt,
 * redriven (one, several, all of a kind or source) and discarded. Every action is recorded in the
 * activity log with its actor and outcome.
 */
export class DeadLetterDesk {
  constructor(private readonly options: DeadLetterDeskOptions) {}

  /** The dead letters matching `filter`, newest first; `total` counts every match looked at. */
  async list(filter: DeadLetterFilter = {}): Promise<{ total: number; items: DeadLetterSummary[] }> {
    const { catalog } = this.options;
    const wanted = (source: string) => filter.source === undefined || filter.source === source;
    const [tasks, events] = await Promise.all([
      filter.kind === 'event' ? [] : Promise.all(catalog.queues.filter(wanted).map((queue) => this.taskSummaries(queue))),
      filter.kind === 'task' ? [] : Promise.all(catalog.topics.filter(wanted).map((topic) => this.eventSummaries(topic))),
    ]);
    const all = [...tasks.flat(), ...events.flat()].filter((item) => filter.code === undefined || item.errorCode === filter.code);
    all.sort((a, b) => b.failedAt.localeCompare(a.failedAt));
    return { total: all.length, items: all.slice(0, filter.limit ?? 100) };
  }

  /**
   * One dead letter with its payload, contract check and attempts.
   * @throws ValidationError for a malformed id, NotFoundError (`dashboard.dead_letter_not_found`) for an unknown one.
   */
  async get(id: string): Promise<DeadLetterDetail> {
    const address = this.address(id);
    if (address.kind === 'task') {
      const letter = await this.options.tasks.get(address.source, address.localId);
      if (!letter) throw notFound(id);
      return this.taskDetail(letter);
    }
    const letter = await this.findEvent(address);
    if (!letter) throw notFound(id);
    return this.eventDetail(letter);
  }

  /**
   * Redrives one dead letter.
   * @throws NotFoundError (`dashboard.dead_letter_not_found`), ConflictError (`dashboard.already_redriven`)
   *   when it was redriven within the last day, ValidationError for a malformed id.
   */
  async redrive(id: string, actor: Actor): Promise<void> {
    const outcome = await this.redriveOne(id, actor);
    if (outcome === 'not_found') throw notFound(id);
    if (outcome === 'already_redriven') throw new ConflictError(`Dead letter ${id} was already redriven`, 'dashboard.already_redriven', { details: { id } });
  }

  /** Redrives each of `ids`; says which were redriven, unknown, or redriven before. */
  async redriveMany(ids: readonly string[], actor: Actor): Promise<RedriveOutcome> {
    const result: RedriveOutcome = { redriven: [], notFound: [], alreadyRedriven: [] };
    for (const id of new Set(ids)) {
      const outcome = await this.redriveOne(id, actor);
      if (outcome === 'done') result.redriven.push(id);
      else if (outcome === 'already_redriven') result.alreadyRedriven.push(id);
      else result.notFound.push(id);
    }
    return result;
  }

  /** Redrives every dead letter of `kind` (of one queue or topic with `source`) present now. */
  async redriveAll(selection: { kind: 'task' | 'event'; source?: string | undefined }, actor: Actor): Promise<RedriveOutcome> {
    const { items } = await this.list({ kind: selection.kind, source: selection.source, limit: SCAN_LIMIT });
    return this.redriveMany(
      items.map((item) => item.id),
      actor,
    );
  }

  /**
   * Deletes a dead letter for good. `confirm` must repeat its id.
   * @throws ValidationError (`dashboard.confirmation_mismatch`) when it does not, NotFoundError for an unknown id.
   */
  async discard(id: string, confirm: string, actor: Actor): Promise<void> {
    const address = this.address(id);
    if (confirm !== id) throw new ValidationError('The confirmation must repeat the id of the dead letter to discard', 'dashboard.confirmation_mismatch', { details: { id, confirm } });
    const discarded =
      address.kind === 'task'
        ? await this.options.tasks.discard(address.source, address.localId)
        : await this.options.events.discardDeadLetter(address.source, address.localId);
    await this.options.activity.record({ actor, action: 'dead_letter.discard', target: id, outcome: discarded ? 'done' : 'not_found' });
    if (!discarded) throw notFound(id);
  }

  private async redriveOne(id: string, actor: Actor): Promise<'done' | 'not_found' | 'already_redriven'> {
    let outcome: 'done' | 'not_found' | 'already_redriven';
    try {
      const address = this.address(id);
      const redriven =
        address.kind === 'task'
          ? await this.options.tasks.redrive(address.source, address.localId)
          : await this.options.events.redriveDeadLetter(address.source, address.localId);
      if (redriven) {
        await this.options.redis.set(this.redrivenKey(id), JSON.stringify({ at: new Date().toISOString(), by: actor.id }), 'EX', REDRIVEN_TTL_SECONDS);
        outcome = 'done';
      } else {
        outcome = (await this.options.redis.exists(this.redrivenKey(id))) === 1 ? 'already_redriven' : 'not_found';
      }
    } catch (error) {
      if (!(error instanceof NotFoundError)) {
        await this.options.activity.record({ actor, action: 'dead_letter.redrive', target: id, outcome: 'failed' });
        throw error;
      }
      outcome = 'not_found';
    }
    await this.options.activity.record({ actor, action: 'dead_letter.redrive', target: id, outcome });
    return outcome;
  }

  /** The address of a well-formed id of a known queue or topic. */
  private address(id: string): DeadLetterAddress {
    const address = parseDeadLetterId(id);
    const sources = address.kind === 'task' ? this.options.catalog.queues : this.options.catalog.topics;
    // Only the contracts' queues and topics: an id cannot make the dashboard open arbitrary queues.
    if (!sources.includes(address.source)) throw notFound(id);
    return address;
  }

  private redrivenKey(id: string): string {
    return `${this.options.prefix}:dashboard:redriven:${id}`;
  }

  private async taskSummaries(queue: string): Promise<DeadLetterSummary[]> {
    const page = await this.options.tasks.list(queue, { limit: SCAN_LIMIT });
    const bull = this.options.queue(queue);
    return Promise.all(
      page.items.map(async (job) => {
        // The newest line of the job's log is its final attempt's record (when the handler ran).
        const { logs } = await bull.getJobLogs(job.id, 0, 0, false);
        const last = logs[0] === undefined ? undefined : parseAttemptRecord(logs[0]);
        return this.taskSummary(job, last?.final ? last : undefined);
      }),
    );
  }

  private taskSummary(job: TaskDeadLetterSummary, final: { code: string; message: string } | undefined): DeadLetterSummary {
    return {
      id: formatDeadLetterId({ kind: 'task', source: job.queue, localId: job.id }),
      kind: 'task',
      source: job.queue,
      name: job.task,
      group: null,
      errorCode: final?.code ?? (job.failedReason.startsWith('job stalled') ? 'tasks.stalled' : 'tasks.error'),
      errorMessage: final?.message ?? job.failedReason,
      failedAt: job.failedAt,
      attempts: job.attemptsMade,
    };
  }

  private taskDetail(letter: TaskDeadLetter): DeadLetterDetail {
    const final = letter.attempts.at(-1);
    const task = this.options.catalog.tasks.find((candidate) => candidate.name === letter.task);
    let contract: ContractVerdict;
    if (!task) contract = { status: 'unknown', issues: [`no task contract is named ${letter.task}`] };
    else if (letter.input === undefined) contract = { status: 'unknown', issues: ['a chain step: its input was the previous step\'s output'] };
    else contract = checkAgainst(task.input, letter.input);
    return {
      ...this.taskSummary(letter, final),
      payload: letter.input ?? null,
      contract,
      attemptsLog: letter.attempts.map((record) => ({ attempt: record.attempt, at: record.at, worker: record.worker ?? null, code: record.code, message: record.message })),
      correlationId: letter.context?.correlationId ?? null,
    };
  }

  private async eventSummaries(topic: string): Promise<DeadLetterSummary[]> {
    const letters = await this.options.events.deadLetters(topic, { limit: SCAN_LIMIT });
    return letters.map((letter) => this.eventSummary(letter));
  }

  private async findEvent(address: DeadLetterAddress): Promise<EventDeadLetter | undefined> {
    // The admin port lists a topic's dead letters (oldest first); it has no lookup by id.
    const letters = await this.options.events.deadLetters(address.source, { limit: 10 * SCAN_LIMIT });
    return letters.find((letter) => letter.id === address.localId);
  }

  private eventSummary(letter: EventDeadLetter): DeadLetterSummary {
    return {
      id: formatDeadLetterId({ kind: 'event', source: letter.topic, localId: letter.id }),
      kind: 'event',
      source: letter.topic,
      name: letter.envelope?.type ?? rawType(letter.raw) ?? 'unknown',
      group: letter.group || null,
      errorCode: letter.error.code ?? `events.${letter.reason}`,
      errorMessage: letter.error.message,
      failedAt: letter.failedAt,
      attempts: letter.deliveries,
    };
  }

  private eventDetail(letter: EventDeadLetter): DeadLetterDetail {
    const summary = this.eventSummary(letter);
    const envelope = letter.envelope;
    let contract: ContractVerdict;
    if (!envelope) {
      contract = { status: 'invalid', issues: ['the stored entry is not a valid event envelope'] };
    } else {
      const versions = this.options.catalog.events.filter((event) => event.type === envelope.type);
      const event = versions.find((candidate) => candidate.version === envelope.version);
      if (versions.length === 0) contract = { status: 'unknown', issues: [`no event contract is named ${envelope.type}`] };
      else if (!event) contract = { status: 'unknown', issues: [`version ${envelope.version} of ${envelope.type} is not in the contracts (${versions.map((v) => v.version).join(', ')})`] };
      else contract = checkAgainst(event.data, envelope.data);
    }
    return {
      ...summary,
      payload: envelope ?? letter.raw,
      contract,
      attemptsLog: [{ attempt: letter.deliveries, at: letter.failedAt, worker: letter.consumer || null, code: summary.errorCode, message: letter.error.message }],
      correlationId: envelope?.correlationId ?? null,
    };
  }
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`No dead letter ${id}`, 'dashboard.dead_letter_not_found', { details: { id } });
}

/** The `type` of a stored text that is not a valid envelope, when it is JSON with one. */
function rawType(raw: string): string | undefined {
  try {
    const value = JSON.parse(raw) as { type?: unknown };
    return typeof value.type === 'string' ? value.type : undefined;
  } catch {
    return undefined;
  }
}
