import type { Producer } from '@platformatic/kafka';
import type { OutgoingMessage } from './kafka-records.ts';

interface Waiting {
  message: OutgoingMessage;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Options of {@link BatchingProducer}. */
export interface BatchingProducerOptions {
  /** Most messages in one produce request. Default: 1,000. */
  maxBatch?: number;
  /** How many delivered message ids are remembered, so a repeat resolves at once. Default: 20,000. */
  rememberDelivered?: number;
  /** Called when a produce request succeeds after one failed or a caller gave up waiting ({@link markUnavailable}): the broker is back. */
  onRecovered?: () => void;
}

/**
 * Sends messages in batches: what callers hand it while a produce request is on its way goes out
 * together in the next one (Kafka's `linger.ms`, without a fixed wait), so many concurrent publishes
 * — the outbox relay delivers a batch's keys in parallel — cost one round trip instead of one each.
 * One request at a time keeps messages in the order they were handed over, also when a caller
 * does not wait for one before the next; when a request fails, the messages of its keys still
 * waiting fail with it, so none lands after an earlier one of its key. The producer is idempotent
 * (acks=all), so the broker drops a batch it already has when the client retries a send.
 *
 * The client retries an idempotent send until the broker takes it, however long it is away, so a
 * caller that gives up (the relay's delivery timeout) and asks again must not queue a second copy:
 * a message with an `id` already waiting or in flight shares that send, and one delivered recently
 * resolves at once. Internal to the Kafka adapter.
 */
export class BatchingProducer {
  private waiting: Waiting[] = [];
  private sending = false;
  private failedSince = false;
  private readonly pending = new Map<string, Promise<void>>();
  private readonly delivered = new Set<string>();
  private readonly maxBatch: number;
  private readonly rememberDelivered: number;

  constructor(
    private readonly producer: Producer<string, string, string, string>,
    private readonly options: BatchingProducerOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 1_000;
    this.rememberDelivered = options.rememberDelivered ?? 20_000;
  }

  /**
   * Resolves once the broker has the message (acknowledged by all in-sync replicas). With an `id`
   * (an envelope id), a message already waiting, in flight or delivered recently is not sent again.
   */
  send(message: OutgoingMessage, id?: string): Promise<void> {
    if (id !== undefined) {
      if (this.delivered.has(id)) return Promise.resolve();
      const existing = this.pending.get(id);
      if (existing) return existing;
    }
    const sent = new Promise<void>((resolve, reject) => {
      this.waiting.push({ message, resolve, reject });
      if (!this.sending) this.flushSoon();
    });
    if (id !== undefined) {
      this.pending.set(id, sent);
      sent.then(
        () => {
          this.pending.delete(id);
          this.remember(id);
        },
        () => this.pending.delete(id),
      );
    }
    return sent;
  }

  /** Records that a caller gave up waiting for the broker: the next successful send reports a recovery. */
  markUnavailable(): void {
    this.failedSince = true;
  }

  private remember(id: string): void {
    this.delivered.add(id);
    if (this.delivered.size > this.rememberDelivered) this.delivered.delete(this.delivered.values().next().value!);
  }

  private flushSoon(): void {
    this.sending = true;
    // Let the callers of this turn add theirs first.
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    const batch = this.waiting.splice(0, this.maxBatch);
    try {
      await this.producer.send({
        messages: batch.map(({ message }) => ({ topic: message.topic, key: message.key, ...(message.value === undefined ? {} : { value: message.value }), headers: message.headers })),
      });
      for (const item of batch) item.resolve();
      if (this.failedSince) {
        this.failedSince = false;
        this.options.onRecovered?.();
      }
    } catch (error) {
      this.failedSince = true;
      for (const item of batch) item.reject(error);
      // Nothing may land after an earlier message of its key failed: the later ones waiting fail too.
      const failedKeys = new Set(batch.map(({ message }) => `${message.topic}\u0000${message.key}`));
      const keep: Waiting[] = [];
      for (const item of this.waiting) {
        if (failedKeys.has(`${item.message.topic}\u0000${item.message.key}`)) item.reject(error);
        else keep.push(item);
      }
      this.waiting = keep;
    } finally {
      if (this.waiting.length > 0) this.flushSoon();
      else this.sending = false;
    }
  }
}
