import { z } from 'zod';
import { currentContext, type RequestContext } from '../context/index.ts';
import { PermanentError } from '../errors/index.ts';
import { newId } from '../ids/index.ts';

/** The envelope every event travels in, on every transport. */
export const EventEnvelope = z.object({
  id: z.uuid(),
  type: z.string().min(1),
  version: z.number().int().positive(),
  topic: z.string().min(1),
  /** Partitioning/ordering key: the aggregate id (a post id, a user id). */
  key: z.string().min(1),
  occurredAt: z.iso.datetime({ offset: true }),
  correlationId: z.string().min(1),
  /** The id of the message that caused this one. */
  causationId: z.string().optional(),
  /** The user who caused it, when one did. */
  actor: z.string().optional(),
  data: z.unknown(),
});
export type EventEnvelope<D = unknown> = Omit<z.infer<typeof EventEnvelope>, 'data'> & { data: D };

/** What {@link defineEvent} takes. */
export interface EventSpec<D extends z.ZodType> {
  /** The stream/topic, e.g. `posts-events`. Several event types may share one topic. */
  topic: string;
  /** Past tense `entity.past-participle`, e.g. `post.created`. */
  type: string;
  /** Schema version. Adding an optional field keeps it; any other change is a new version. */
  version: number;
  /** Schema of `data`. Keep it non-strict: consumers tolerate extra fields. */
  data: D;
  /** Derives the key (aggregate id) from the data. Required unless every publish passes `key`. */
  key?: (data: z.output<D>) => string;
  description?: string;
}

/** An event contract. */
export interface EventDefinition<D extends z.ZodType = z.ZodType> {
  readonly kind: 'event';
  readonly topic: string;
  readonly type: string;
  readonly version: number;
  readonly data: D;
  readonly key?: (data: z.output<D>) => string;
  readonly description?: string;
}

export type EventData<E extends EventDefinition> = z.output<E['data']>;

/** Options of {@link createEnvelope}. */
export interface EnvelopeOptions {
  /** Overrides the definition's key function. */
  key?: string;
  /** Default: the current context (a new correlation id outside one). */
  context?: RequestContext;
  /** Default: now. */
  occurredAt?: Date;
  /** Default: a new UUIDv7. Pass a derived id to make a re-publish idempotent. */
  id?: string;
}

/**
 * Validates `data` against the contract and wraps it in an envelope carrying the current
 * correlation id, causation id and actor.
 */
export function createEnvelope<E extends EventDefinition>(
  event: E,
  data: z.input<E['data']>,
  options: EnvelopeOptions = {},
): EventEnvelope<EventData<E>> {
  const parsed = event.data.parse(data) as EventData<E>;
  const key = options.key ?? event.key?.(parsed);
  if (!key) throw new TypeError(`Event ${event.type} needs a key: give the definition a key function or pass one`);
  const context = options.context ?? currentContext();
  return {
    id: options.id ?? newId(),
    type: event.type,
    version: event.version,
    topic: event.topic,
    key,
    occurredAt: (options.occurredAt ?? new Date()).toISOString(),
    correlationId: context?.correlationId ?? newId(),
    ...(context?.causationId ? { causationId: context.causationId } : {}),
    ...(context?.userId ? { actor: context.userId } : {}),
    data: parsed,
  };
}

/**
 * Returns `envelope` when it is a valid envelope; throws a `PermanentError`
 * (`events.invalid_envelope`, the zod issues as details) otherwise. Every adapter's
 * `publishEnvelope` checks with it before the envelope reaches its transport.
 */
export function assertPublishable(envelope: EventEnvelope): EventEnvelope {
  const checked = EventEnvelope.safeParse(envelope);
  if (!checked.success) {
    throw new PermanentError(`Invalid event envelope: ${z.prettifyError(checked.error)}`, 'events.invalid_envelope', { details: checked.error.issues });
  }
  return envelope;
}

/**
 * The smallest producing port: publishes a ready envelope. The outbox relay and the worker's
 * outcome events need only this; every adapter's {@link EventPublisher} is one.
 */
export interface EnvelopePublisher {
  /** Publishes an envelope as is (already validated). Resolves once the transport has it durably. */
  publishEnvelope(envelope: EventEnvelope): Promise<void>;
  /**
   * `true` when envelopes of one key handed over without waiting for each other land in the order
   * they were handed over, and none lands after an earlier one of its key failed. The outbox relay
   * then sends a key's rows together instead of one round trip each (Kafka's producer). Default: false.
   */
  readonly keepsKeyOrder?: boolean;
}

const registry = new Map<string, EventDefinition>();
const registryKey = (type: string, version: number) => `${type}@v${version}`;

/** Defines (and registers) an event contract. Throws on a malformed name or a duplicate type+version. */
export function defineEvent<D extends z.ZodType>(spec: EventSpec<D>): EventDefinition<D> {
  if (!/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/.test(spec.type)) throw new TypeError(`Event type "${spec.type}" must look like entity.past-participle`);
  if (!/^[a-z][a-z0-9.-]*$/.test(spec.topic)) throw new TypeError(`Topic "${spec.topic}" must be lower-case`);
  if (!Number.isInteger(spec.version) || spec.version < 1) throw new TypeError('Event version must be a positive integer');
  const id = registryKey(spec.type, spec.version);
  if (registry.has(id)) throw new TypeError(`Event ${id} is defined twice`);
  const definition: EventDefinition<D> = { kind: 'event', ...spec };
  registry.set(id, definition as EventDefinition);
  return definition;
}

/** The registered definition of an event type and version, if its contract module has been loaded. */
export function findEvent(type: string, version: number): EventDefinition | undefined {
  return registry.get(registryKey(type, version));
}
