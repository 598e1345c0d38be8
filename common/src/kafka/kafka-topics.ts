import { setTimeout as delay } from 'node:timers/promises';
import type { Admin, Base } from '@platformatic/kafka';

/** What a topic the bus creates looks like. */
export interface TopicSettings {
  partitions: number;
  replicationFactor: number;
  /** `retention.ms` of event topics. */
  retentionMs: number;
}

/** Kafka's error code for a topic that already exists. */
const TOPIC_ALREADY_EXISTS = 36;

function alreadyExists(error: unknown): boolean {
  const nested = (error as { errors?: unknown[] }).errors ?? [];
  return [error, ...nested].some((item) => (item as { apiCode?: number }).apiCode === TOPIC_ALREADY_EXISTS);
}

/**
 * Creates the bus's topics on first use (the broker runs with `auto.create.topics.enable=false`, and
 * an operator's cluster should too): event topics with the configured partitions and time retention,
 * dead-letter topics compacted (a redriven or discarded dead letter is a tombstone) with one
 * partition (oldest first). An existing topic is left as it is. Internal to the Kafka adapter.
 */
export class KafkaTopics {
  private readonly created = new Map<string, Promise<void>>();
  /**
   * Creations run one at a time: `@platformatic/kafka` 1.x deduplicates concurrent `createTopics`
   * calls of one client whatever their topics, so a second topic requested meanwhile would never be
   * created.
   */
  private serial: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly admin: Admin,
    /** A client whose metadata requests show when a new topic's partitions have leaders. */
    private readonly metadataClient: Pick<Base, 'metadata'>,
    private readonly settings: TopicSettings,
  ) {}

  /** Ensures an event topic exists. A failed attempt is forgotten, so the next call tries again. */
  ensureEventTopic(name: string): Promise<void> {
    return this.ensure(name, this.settings.partitions, [
      { name: 'cleanup.policy', value: 'delete' },
      { name: 'retention.ms', value: String(this.settings.retentionMs) },
    ]);
  }

  /** Ensures a dead-letter topic exists. */
  ensureDeadLetterTopic(name: string): Promise<void> {
    return this.ensure(name, 1, [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'retention.ms', value: '-1' },
    ]);
  }

  /**
   * Waits until every partition of a just-created topic has a leader (a few hundred ms at most on
   * a healthy cluster): producing before that gets NOT_LEADER_OR_FOLLOWER answers, which
   * `@platformatic/kafka` 1.x can misparse into a non-retriable error.
   */
  private async untilLed(name: string): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        const metadata = await this.metadataClient.metadata({ topics: [name], forceUpdate: true });
        const topic = metadata.topics.get(name);
        if (topic && topic.partitions.length > 0 && topic.partitions.every((partition) => partition.leader >= 0)) return;
      } catch {
        // Not known yet: ask again.
      }
      await delay(100);
    }
  }

  private ensure(name: string, partitions: number, configs: { name: string; value: string }[]): Promise<void> {
    let pending = this.created.get(name);
    if (!pending) {
      const create = () => this.admin.createTopics({ topics: [name], partitions, replicas: this.settings.replicationFactor, configs });
      pending = this.serial
        .then(create, create)
        .then(
          () => this.untilLed(name),
          (error: unknown) => {
            if (!alreadyExists(error)) throw error;
          },
        );
      pending.catch(() => this.created.delete(name));
      this.serial = pending.catch(() => undefined);
      this.created.set(name, pending);
    }
    return pending;
  }
}
