import { z } from 'zod';
import { runWithContext } from '../context/index.ts';
import type { Logger } from '../logging/index.ts';
import { EventEnvelope, type EventDefinition } from './define.ts';
import type { DeadLetterReason, EnvelopeOf, EventHandlerContext, SubscribeOptions } from './event-bus.ts';

/** An error as a dead letter keeps it. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

/** The stored text of an event, parsed: an envelope, or why it is not one. */
export type ParsedEnvelope = { ok: true; envelope: EventEnvelope } | { ok: false; error: string };

/** What one delivery is, as the transport read it. */
export interface RoutedDelivery {
  parsed: ParsedEnvelope;
  /** The type the transport stored next to the envelope (a field or a header), readable even when the envelope is not. */
  storedType: string | undefined;
  /** Only this group handles it (a redriven dead letter). */
  onlyGroup: string | undefined;
}

/** What a subscription does with a delivery, decided before any handler runs. */
export type Route =
  | { action: 'skip'; type: string }
  | { action: 'dead_letter'; type: string; reason: DeadLetterReason; error: SerializedError }
  | { action: 'handle'; type: string; envelope: EventEnvelope; data: unknown };

/** An error as a dead letter records it (with its `code` when it has one). */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? { name: error.name, message: error.message, code } : { name: error.name, message: error.message };
  }
  return { name: 'Error', message: String(error) };
}

/** Parses the stored text of an event into an envelope. */
export function parseEnvelope(raw: string): ParsedEnvelope {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    return { ok: false, error: `envelope is not JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  const result = EventEnvelope.safeParse(json);
  return result.success ? { ok: true, envelope: result.data } : { ok: false, error: z.prettifyError(result.error) };
}

/**
 * The transport-neutral half of a subscription: which deliveries its group handles, skips or
 * dead-letters (by type, version, redrive target and schema), and how its handler is invoked.
 * Each adapter's subscription reads, acknowledges and retries; this decides and calls.
 */
export class EventRouter<E extends EventDefinition> {
  private readonly definitions = new Map<string, Map<number, EventDefinition>>();

  constructor(
    private readonly options: SubscribeOptions<E>,
    private readonly logger: Logger,
  ) {
    for (const definition of options.events) {
      let versions = this.definitions.get(definition.type);
      if (!versions) this.definitions.set(definition.type, (versions = new Map()));
      versions.set(definition.version, definition);
    }
  }

  /** Decides what the group does with a delivery. */
  route(delivery: RoutedDelivery, topic: string): Route {
    const group = this.options.group;
    if (!delivery.parsed.ok) {
      // Someone else's broken event is not this group's business.
      const { storedType, onlyGroup } = delivery;
      if ((storedType !== undefined && !this.definitions.has(storedType)) || (onlyGroup !== undefined && onlyGroup !== group)) {
        return { action: 'skip', type: storedType ?? 'unknown' };
      }
      return {
        action: 'dead_letter',
        type: storedType ?? 'unknown',
        reason: 'malformed',
        error: { name: 'MalformedEnvelope', message: delivery.parsed.error, code: 'events.malformed_envelope' },
      };
    }
    const envelope = delivery.parsed.envelope;
    const { type } = envelope;
    if (delivery.onlyGroup !== undefined && delivery.onlyGroup !== group) return { action: 'skip', type };
    const versions = this.definitions.get(type);
    if (!versions) return { action: 'skip', type };
    const definition = versions.get(envelope.version);
    if (!definition) {
      this.logger.warn(
        { topic, eventType: type, eventId: envelope.id, version: envelope.version, known: [...versions.keys()] },
        'event version not handled by this consumer; skipped',
      );
      return { action: 'skip', type };
    }
    const data = definition.data.safeParse(envelope.data);
    if (!data.success) {
      return { action: 'dead_letter', type, reason: 'invalid_data', error: { name: 'ValidationError', message: z.prettifyError(data.error), code: 'events.invalid_data' } };
    }
    return { action: 'handle', type, envelope, data: data.data };
  }

  /** Runs the handler inside the envelope's context (correlation id, actor, causation id). */
  invoke(route: Extract<Route, { action: 'handle' }>, ctx: EventHandlerContext): Promise<void> {
    const { envelope } = route;
    return runWithContext({ correlationId: envelope.correlationId, userId: envelope.actor, causationId: envelope.id }, async () => {
      await this.options.handle({ ...envelope, data: route.data } as EnvelopeOf<E>, ctx);
    });
  }
}
