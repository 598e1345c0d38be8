import type { z } from 'zod';
import type { EnvelopeOptions, EventData, EventDefinition, EventEnvelope } from '../events/define.ts';
import type { DeadLetter, EventBus, GroupInfo, GroupPosition, SubscribeOptions, Subscription } from '../events/event-bus.ts';
import type { KafkaEventBusOptions } from './kafka-event-bus-options.ts';

const notYet = (): never => {
  throw new Error('KafkaEventBus: not implemented yet');
};

/** The Kafka adapter of the event bus (work in progress). */
export class KafkaEventBus implements EventBus {
  constructor(readonly options: KafkaEventBusOptions) {}
  publish<E extends EventDefinition>(_event: E, _data: z.input<E['data']>, _options?: EnvelopeOptions): Promise<EventEnvelope<EventData<E>>> {
    return notYet();
  }
  publishEnvelope(_envelope: EventEnvelope): Promise<void> {
    return notYet();
  }
  subscribe<E extends EventDefinition>(_options: SubscribeOptions<E>): Subscription {
    return notYet();
  }
  createGroup(_topic: string, _group: string, _from?: GroupPosition): Promise<boolean> {
    return notYet();
  }
  resetGroup(_topic: string, _group: string, _to: GroupPosition): Promise<void> {
    return notYet();
  }
  deleteGroup(_topic: string, _group: string): Promise<boolean> {
    return notYet();
  }
  groups(_topic: string): Promise<GroupInfo[]> {
    return notYet();
  }
  deadLetters(_topic: string, _options?: { limit?: number }): Promise<DeadLetter[]> {
    return notYet();
  }
  redriveDeadLetter(_topic: string, _id: string): Promise<boolean> {
    return notYet();
  }
  discardDeadLetter(_topic: string, _id: string): Promise<boolean> {
    return notYet();
  }
  ping(): Promise<void> {
    return notYet();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
