import { Admin } from '@platformatic/kafka';

/**
 * Deletes the topics and consumer groups whose names start with `prefix` (the `KAFKA_PREFIX` of
 * one system or test file) on `brokers`: the Kafka twin of `removeRedisPrefix`. Best effort, for
 * clean-ups: a group that still has a live member (a killed consumer keeps its place until its
 * session expires) is left as it is, and a broker that does not answer makes it reject after a few
 * seconds (each request gives up after 5 s).
 *
 * The admin requests go one after the other: `@platformatic/kafka` 1.x deduplicates concurrent
 * metadata and topic requests of one client whatever their arguments.
 * @throws TypeError when `prefix` is empty (that would be every topic of the cluster).
 */
export async function removeKafkaPrefix(brokers: readonly string[], prefix: string): Promise<void> {
  if (!prefix) throw new TypeError('removeKafkaPrefix needs a non-empty prefix');
  const admin = new Admin({ clientId: 'civildiy-test-cleanup', bootstrapBrokers: [...brokers], timeout: 5_000, retries: 1, retryDelay: 250 });
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    const groups = [...(await admin.listGroups()).keys()].filter((group) => group.startsWith(prefix));
    if (groups.length > 0) await admin.deleteGroups({ groups }).catch(() => undefined);
  } finally {
    await admin.close().catch(() => undefined);
  }
}
