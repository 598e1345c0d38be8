import { setTimeout as delay } from 'node:timers/promises';
import { findCoordinatorV6, offsetCommitV9, offsetDeleteV0, offsetFetchV9, type Admin, type Connection, type Consumer } from '@platformatic/kafka';
import type { GroupPosition, PartitionLag } from '../events/event-bus.ts';

/**
 * Marks the commits this adapter writes itself (group creation, resets), so a group placed before
 * the start of an empty partition (stored offset -1) still counts as existing on the topic.
 */
const POSITION_MARK = 'civildiy';

/** ListOffsets timestamps with a special meaning. */
const EARLIEST = -2n;
const LATEST = -1n;

/** One partition's committed position as the broker returns it. */
interface StoredOffset {
  partition: number;
  /** The stored offset: the last event handled (see {@link KafkaGroupOffsets}), -1 for none. */
  offset: bigint;
  mark: string;
}

/** A group's position on a topic, per partition. */
export interface TopicPosition {
  /** Whether the group has a position on the topic at all. */
  exists: boolean;
  partitions: PartitionLag[];
}

function canRetry(error: unknown): boolean {
  const nested = (error as { errors?: unknown[] }).errors ?? [];
  return [error, ...nested].some((item) => (item as { canRetry?: boolean }).canRetry === true);
}

function responseErrors(codes: number[], what: string): void {
  const failed = codes.filter((code) => code !== 0);
  if (failed.length > 0) throw new Error(`${what} failed with Kafka error code ${failed.join(', ')}`);
}

/**
 * Consumer-group positions: read, written (create, reset) and deleted per topic, and turned into lag.
 *
 * Offsets are stored as `@platformatic/kafka` 1.x stores them: the offset of the last event
 * handled, where Kafka's convention is the next one to read (fixed upstream in 2.x, which needs
 * Node 22; see platformatic/kafka#101). Every method here speaks the usual convention — `committed`
 * is the next offset the group reads — and converts at the broker. Standard tools
 * (`kafka-consumer-groups.sh`) therefore show one more event of lag per partition than there is.
 * Internal to the Kafka adapter.
 */
export class KafkaGroupOffsets {
  constructor(
    private readonly admin: Admin,
    /** A consumer that never joins a group: used for offsets by time and partition ends. */
    private readonly reader: Consumer<string, string, string, string>,
  ) {}

  /** The group's position on every partition of `topic`, with the partition ends and lag. */
  async position(group: string, topic: string): Promise<TopicPosition> {
    const [starts, ends] = await Promise.all([this.offsets(topic, EARLIEST), this.offsets(topic, LATEST)]);
    const stored = await this.stored(group, topic, ends.length);
    let exists = false;
    const partitions = ends.map((end, partition): PartitionLag => {
      const entry = stored.find((item) => item.partition === partition);
      const placed = entry !== undefined && (entry.offset >= 0n || entry.mark === POSITION_MARK);
      if (placed) exists = true;
      const next = placed ? entry.offset + 1n : undefined;
      const from = next ?? starts[partition] ?? 0n;
      return { partition, committed: next === undefined ? null : Number(next), end: Number(end), lag: Math.max(0, Number(end - from)) };
    });
    return { exists, partitions };
  }

  /**
   * Sets the group's next offset on every partition of `topic` to `to`. Kafka accepts this only
   * while the group has no live member; otherwise it throws.
   */
  async place(group: string, topic: string, to: GroupPosition): Promise<void> {
    const next = await this.resolve(topic, to);
    const connection = await this.coordinator(group);
    const response = await offsetCommitV9.api.async(connection, group, -1, '', null, [
      {
        name: topic,
        partitions: next.map((offset, partition) => ({ partitionIndex: partition, committedOffset: offset - 1n, committedLeaderEpoch: -1, committedMetadata: POSITION_MARK })),
      },
    ]);
    responseErrors(response.topics.flatMap((item) => item.partitions.map((partition) => partition.errorCode)), `Placing group ${group} on ${topic}`);
  }

  /** Deletes the group's position on `topic` (Kafka refuses while a live member consumes it). */
  async forget(group: string, topic: string): Promise<void> {
    const partitions = (await this.offsets(topic, LATEST)).map((_, partition) => ({ partitionIndex: partition }));
    const connection = await this.coordinator(group);
    const response = await offsetDeleteV0.api.async(connection, group, [{ name: topic, partitions }]);
    responseErrors([response.errorCode, ...response.topics.flatMap((item) => item.partitions.map((partition) => partition.errorCode))], `Deleting group ${group} on ${topic}`);
  }

  /** The next offset of every partition for a position: its start, its end, or the first event at or after a time. */
  async resolve(topic: string, to: GroupPosition): Promise<bigint[]> {
    if (to === 'start') return this.offsets(topic, EARLIEST);
    if (to === 'end') return this.offsets(topic, LATEST);
    if (to instanceof Date) {
      const [atTime, ends] = await Promise.all([this.offsets(topic, BigInt(to.getTime())), this.offsets(topic, LATEST)]);
      // No event at or after the time: the partition's end.
      return atTime.map((offset, partition) => (offset < 0n ? (ends[partition] ?? 0n) : offset));
    }
    const match = /^(\d+(?::\d+)?)(,\d+:\d+)*$/.test(to) ? to : undefined;
    if (match === undefined) throw new TypeError(`Invalid Kafka position "${to}": expected 'start', 'end', a Date or partition:offset pairs like 0:42,1:17`);
    const explicit = new Map(to.split(',').map((pair) => pair.split(':').map(Number) as [number, number]));
    const ends = await this.offsets(topic, LATEST);
    return ends.map((end, partition) => BigInt(explicit.get(partition) ?? Number(end)));
  }

  /** Offsets of every partition for a ListOffsets timestamp (earliest, latest or a time in ms). */
  async offsets(topic: string, timestamp: bigint): Promise<bigint[]> {
    const result = await this.reader.listOffsets({ topics: [topic], timestamp });
    return result.get(topic) ?? [];
  }

  private async stored(group: string, topic: string, partitionCount: number): Promise<StoredOffset[]> {
    const partitions = Array.from({ length: partitionCount }, (_, partition) => partition);
    const connection = await this.coordinator(group);
    const response = await offsetFetchV9.api.async(connection, [{ groupId: group, memberId: null, memberEpoch: -1, topics: [{ name: topic, partitionIndexes: partitions }] }], false);
    const found = response.groups.find((item) => item.groupId === group);
    if (!found) return [];
    responseErrors([found.errorCode], `Reading group ${group}`);
    return found.topics
      .filter((item) => item.name === topic)
      .flatMap((item) => item.partitions.map((partition) => ({ partition: partition.partitionIndex, offset: partition.committedOffset, mark: partition.metadata ?? '' })));
  }

  /** A connection to the group's coordinator (retried while the broker is still electing one). */
  private async coordinator(group: string): Promise<Connection> {
    for (let attempt = 0; ; attempt++) {
      try {
        const [bootstrap] = (await this.admin.connectToBrokers(null)).values();
        if (!bootstrap) throw new Error('No Kafka broker is reachable');
        const { coordinators } = await findCoordinatorV6.api.async(bootstrap, 0, [group]);
        const nodeId = coordinators[0]!.nodeId;
        const connection = (await this.admin.connectToBrokers([nodeId])).get(nodeId);
        if (!connection) throw new Error(`The coordinator of group ${group} (broker ${nodeId}) is not reachable`);
        return connection;
      } catch (error) {
        if (attempt >= 20 || !canRetry(error)) throw error;
        await delay(250);
      }
    }
  }
}
