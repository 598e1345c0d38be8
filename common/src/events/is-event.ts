import type { EventData, EventDefinition, EventEnvelope } from './define.ts';

/**
 * Whether `envelope` is an event of `definition` (same type and version). Narrows the envelope a
 * handler receives: `if (isEvent(postCreated, env)) env.data.postId`.
 */
export function isEvent<E extends EventDefinition>(definition: E, envelope: EventEnvelope): envelope is EventEnvelope<EventData<E>> {
  return envelope.type === definition.type && envelope.version === definition.version;
}
