import type { Consumer } from '@platformatic/kafka';
import { EventEnvelope } from '../events/define.ts';
import type { DeadLetter, DeadLetterReason } from '../events/event-bus.ts';
import type { DeadLetterRecord } from './kafka-records.ts';

/** Largest fetch while reading a dead-letter topic. */
const FETCH_MAX_BYTES = 4 * 1024 * 1024;

/** A dead letter as stored, with its id (the record key). */
export interface StoredDeadLetter {
  id: string;
  record: DeadLetterRecord;
}

/**
 * Reads a dead-letter topic: one partition, compacted, keyed by dead-letter id; a record with no
 * value (a tombstone) means the dead letter was redriven or discarded. The whole topic is read up to
 * its end and folded (the last record of an id wins), as compaction would. Internal to the Kafka
 * adapter.
 */
export class KafkaDeadLetterReader {
  constructor(private readonly reader: Consumer<string, string, string, string>) {}

  /** The live dead letters of a dead-letter topic, oldest first. */
  async read(topic: string): Promise<StoredDeadLetter[]> {
    const metadata = await this.reader.metadata({ topics: [topic] });
    const info = metadata.topics.get(topic);
    if (!info) return [];
    const leader = info.partitions[0]!.leader;
    const [ends, starts] = await Promise.all([this.reader.listOffsets({ topics: [topic], timestamp: -1n }), this.reader.listOffsets({ topics: [topic], timestamp: -2n })]);
    const end = ends.get(topic)?.[0] ?? 0n;
    let offset = starts.get(topic)?.[0] ?? 0n;
    const live = new Map<string, StoredDeadLetter>();
    while (offset < end) {
      const response = await this.reader.fetch({
        node: leader,
        maxWaitTime: 100,
        topics: [{ topicId: info.id, partitions: [{ partition: 0, fetchOffset: offset, partitionMaxBytes: FETCH_MAX_BYTES, currentLeaderEpoch: -1, lastFetchedEpoch: -1 }] }],
      });
      const partition = response.responses[0]?.partitions[0];
      const batches = partition?.records ?? [];
      let advanced = false;
      for (const batch of batches) {
        for (const record of batch.records) {
          const at = batch.firstOffset + BigInt(record.offsetDelta);
          if (at < offset) continue;
          const id = record.key?.toString() ?? '';
          const value = record.value && record.value.length > 0 ? record.value.toString() : undefined;
          live.delete(id);
          if (value !== undefined) {
            try {
              live.set(id, { id, record: JSON.parse(value) as DeadLetterRecord });
            } catch {
              // Not written by this adapter: nothing to show.
            }
          }
        }
        const next = batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n;
        if (next > offset) {
          offset = next;
          advanced = true;
        }
      }
      // Compaction may leave a gap; the log start may have moved past the position.
      if (!advanced) {
        if (partition && partition.logStartOffset > offset) offset = partition.logStartOffset;
        else break;
      }
    }
    return [...live.values()];
  }
}

/** The port's view of a stored dead letter. */
export function toDeadLetter(topic: string, stored: StoredDeadLetter): DeadLetter {
  const { record } = stored;
  let envelope: EventEnvelope | undefined;
  try {
    const parsed = EventEnvelope.safeParse(JSON.parse(record.raw));
    if (parsed.success) envelope = parsed.data;
  } catch {
    // A malformed envelope is exactly what `raw` is kept for.
  }
  return {
    id: stored.id,
    topic,
    group: record.group,
    consumer: record.consumer,
    sourceId: record.sourceId,
    reason: record.reason as DeadLetterReason,
    error: record.error,
    deliveries: record.deliveries,
    failedAt: record.failedAt,
    ...(envelope ? { envelope } : {}),
    raw: record.raw,
  };
}
