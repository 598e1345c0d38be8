import type { EventEnvelope } from '../events/define.ts';

/**
 * How events and dead letters look on Kafka. Internal to the Kafka adapter.
 *
 * An event: key = the envelope's key (one aggregate's events share a partition, so they stay in
 * order), value = the JSON envelope, headers `type`, `version`, `correlation-id` (readable by tools
 * and by consumers before parsing), plus `redrive-group` and `redriven-from` on a redriven dead
 * letter (only that group handles it).
 */
export const HEADER = {
  type: 'type',
  version: 'version',
  correlationId: 'correlation-id',
  redriveGroup: 'redrive-group',
  redrivenFrom: 'redriven-from',
} as const;

/** The topic's name on the broker. */
export function topicName(prefix: string, topic: string): string {
  return `${prefix}${topic}`;
}

/** The topic's dead-letter topic on the broker (compacted, one partition, keyed by dead-letter id). */
export function deadLetterTopicName(prefix: string, topic: string): string {
  return `${prefix}${topic}.dead-letters`;
}

/** A consumer group's id on the broker (Kafka groups are cluster-wide, so they carry the prefix too). */
export function groupName(prefix: string, group: string): string {
  return `${prefix}${group}`;
}

/** A message ready for `Producer.send` (string serializers). */
export interface OutgoingMessage {
  topic: string;
  key: string;
  value: string | undefined;
  headers: Record<string, string>;
}

/** The message carrying an envelope on its topic. */
export function envelopeMessage(prefix: string, envelope: EventEnvelope, extraHeaders: Record<string, string> = {}): OutgoingMessage {
  return {
    topic: topicName(prefix, envelope.topic),
    key: envelope.key,
    value: JSON.stringify(envelope),
    headers: {
      [HEADER.type]: envelope.type,
      [HEADER.version]: String(envelope.version),
      [HEADER.correlationId]: envelope.correlationId,
      ...extraHeaders,
    },
  };
}

/** What the dead-letter topic stores for one dead letter (its value, JSON). */
export interface DeadLetterRecord {
  group: string;
  consumer: string;
  /** `partition:offset` of the event in its topic. */
  sourceId: string;
  /** The event's key (a redrive publishes with the same key, so it keeps its partition and order). */
  key: string;
  reason: string;
  error: { name: string; message: string; code?: string };
  deliveries: number;
  failedAt: string;
  /** The event's stored text as published. */
  raw: string;
}

/** Reads a header of a consumed message (string deserializers). */
export function header(headers: Map<string, string | undefined>, name: string): string | undefined {
  const value = headers.get(name);
  return value === undefined || value === '' ? undefined : value;
}
