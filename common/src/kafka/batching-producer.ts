import type { Producer } from '@platformatic/kafka';
import type { OutgoingMessage } from './kafka-records.ts';

interface Waiting {
  message: OutgoingMessage;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Sends messages in batches: what callers hand it while a produce request is on its way goes out
 * together in the next one (Kafka's `linger.ms`, without a fixed wait), so many concurrent publishes
 * — the outbox relay delivers a batch's keys in parallel — cost one round trip instead of one each.
 * One request at a time keeps the order of messages a caller awaited one after the other; the
 * producer is idempotent (acks=all), so the broker drops a batch it already has when a send is
 * retried. Internal to the Kafka adapter.
 */
export class BatchingProducer {
  private waiting: Waiting[] = [];
  private sending = false;

  constructor(
    private readonly producer: Producer<string, string, string, string>,
    /** Most messages in one produce request. */
    private readonly maxBatch = 1_000,
  ) {}

  /** Resolves once the broker has the message (acknowledged by all in-sync replicas). */
  send(message: OutgoingMessage): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ message, resolve, reject });
      if (!this.sending) this.flushSoon();
    });
  }

  private flushSoon(): void {
    this.sending = true;
    // Let the callers of this turn add theirs first.
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    const batch = this.waiting.splice(0, this.maxBatch);
    try {
      await this.producer.send({ messages: batch.map(({ message }) => ({ topic: message.topic, key: message.key, ...(message.value === undefined ? {} : { value: message.value }), headers: message.headers })) });
      for (const item of batch) item.resolve();
    } catch (error) {
      for (const item of batch) item.reject(error);
    } finally {
      if (this.waiting.length > 0) this.flushSoon();
      else this.sending = false;
    }
  }
}
