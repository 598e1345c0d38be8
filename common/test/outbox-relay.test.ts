import { asc, eq, sql } from 'drizzle-orm';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runWithContext } from '../src/context/index.ts';
import { derivedId, newId } from '../src/ids/index.ts';
import { inboxTable, outbox, OutboxRelay, outboxTable, type OutboxRelayOptions } from '../src/outbox/index.ts';
import type { TaskDefinition } from '../src/tasks/define.ts';
import { restockWidget, widgetCreated, widgetRenamed } from './fixtures/db-fixture/contracts.ts';
import { RecordingPublisher, RecordingTaskEnqueuer } from './fixtures/db-fixture/recording-ports.ts';
import {
  databaseTargets,
  fixtureSchema,
  postgresTarget,
  quietLogger,
  type DatabaseLocation,
  type FixtureDatabase,
} from './fixtures/db-fixture/targets.ts';

const { widgets } = fixtureSchema;

/** Writes a widget and its `widget.created` event in one transaction; returns the event id. */
async function createWidget(database: FixtureDatabase, name = `w-${newId()}`): Promise<string> {
  const widget = { id: newId(), name, quantity: 1 };
  return database.db.transaction(async (tx) => {
    await tx.insert(widgets).values(widget);
    return outbox.event(tx, widgetCreated, widget);
  });
}

/** Writes `widget.renamed` events for one widget (one key), in order; returns their ids. */
async function renameSeveralTimes(database: FixtureDatabase, widgetId: string, times: number): Promise<string[]> {
  const ids: string[] = [];
  for (let sequence = 1; sequence <= times; sequence++) {
    ids.push(await database.db.transaction((tx) => outbox.event(tx, widgetRenamed, { id: widgetId, name: `name-${sequence}`, sequence })));
  }
  return ids;
}

describe.each(databaseTargets)('outbox relay on $name (in-test publisher and task enqueuer)', (target) => {
  let location: DatabaseLocation;
  let database: FixtureDatabase;
  let publisher: RecordingPublisher;
  let tasks: RecordingTaskEnqueuer;
  const relays: OutboxRelay[] = [];

  function relay(overrides: Partial<OutboxRelayOptions> = {}): OutboxRelay {
    const created = new OutboxRelay({
      db: database.db,
      publisher,
      tasks,
      logger: quietLogger,
      registry: new Registry(),
      pollIntervalMs: 60_000,
      ...overrides,
    });
    relays.push(created);
    return created;
  }

  beforeAll(async () => {
    location = await target.createLocation();
    database = await location.open();
  });
  afterAll(async () => {
    await database.close();
    await location.remove();
  });
  beforeEach(async () => {
    await database.db.delete(outboxTable);
    publisher = new RecordingPublisher();
    tasks = new RecordingTaskEnqueuer();
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((started) => started.stop()));
  });

  it('delivers pending events and tasks oldest first once started, and marks them sent', async () => {
    const first = await createWidget(database);
    const taskId = await database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: 1 }));
    const second = await createWidget(database);
    const third = await createWidget(database);

    relay().start();
    const published = await publisher.waitFor(3);
    const enqueued = await tasks.waitFor(1);

    expect(published.map((envelope) => envelope.id)).toEqual([first, second, third]);
    expect(enqueued.map((item) => item.options.idempotencyKey)).toEqual([taskId]);
    await relays[0]!.stop();
    const rows = await database.db.select().from(outboxTable);
    expect(rows).toHaveLength(4);
    expect(rows.every((row) => row.sentAt instanceof Date && row.attempts === 0)).toBe(true);
  });

  it('wake() delivers a row committed after start without waiting for the next poll', async () => {
    const started = relay({ pollIntervalMs: 600_000 });
    started.start();
    const id = await createWidget(database);
    for (let wake = 0; wake < 5; wake++) started.wake();
    const [envelope] = await publisher.waitFor(1);
    expect(envelope?.id).toBe(id);
    await expect(started.publishPending()).resolves.toEqual({ published: 0, failed: 0 });
    expect(publisher.received).toHaveLength(1);
  });

  it('when the publisher fails twice, the event is still delivered once after backoff, with the attempts recorded', async () => {
    publisher.failNext(2);
    const id = await createWidget(database);
    relay({ backoff: { baseMs: 20, maxMs: 200 } }).start();

    const [envelope] = await publisher.waitFor(1);
    expect(envelope?.id).toBe(id);
    expect(publisher.failures).toBe(2);
    await relays[0]!.stop();
    const [row] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, id));
    expect(row?.attempts).toBe(2);
    expect(row?.lastError).toContain('event bus unavailable');
    expect(row?.sentAt).toBeInstanceOf(Date);
    expect(publisher.received).toHaveLength(1);
  });

  it('a failed row holds back the later rows of its key, not the rows of other keys', async () => {
    const widgetA = newId();
    const [a1, a2] = await renameSeveralTimes(database, widgetA, 2);
    const b1 = await createWidget(database);
    const manual = relay({ backoff: { baseMs: 60_000, maxMs: 60_000 } });

    publisher.failNext(1);
    await expect(manual.publishPending()).resolves.toEqual({ published: 1, failed: 1 });
    expect(publisher.received.map((envelope) => envelope.id)).toEqual([b1]);
    // a1 waits out its backoff and a2 waits behind it.
    await expect(manual.publishPending()).resolves.toEqual({ published: 0, failed: 0 });

    // The backoff has passed (moved back in time here rather than waited for).
    await database.db.update(outboxTable).set({ availableAt: sql`now() - interval '1 second'` }).where(eq(outboxTable.id, a1!));
    await expect(manual.publishPending()).resolves.toEqual({ published: 2, failed: 0 });
    expect(publisher.received.map((envelope) => envelope.id)).toEqual([b1, a1, a2]);
  });

  it('a failing row is postponed alone: the other keys of its batch are delivered in the same pass', async () => {
    const ids = [await createWidget(database), await createWidget(database), await createWidget(database)];
    publisher.failNext(1);
    await expect(relay({ backoff: { baseMs: 60_000 } }).publishPending()).resolves.toEqual({ published: 2, failed: 1 });
    expect(publisher.received.map((envelope) => envelope.id)).toEqual([ids[1], ids[2]]);
    const rows = await database.db.select().from(outboxTable).orderBy(asc(outboxTable.createdAt));
    expect(rows.map((row) => [row.id, row.attempts, row.sentAt === null])).toEqual([
      [ids[0], 1, true],
      [ids[1], 0, false],
      [ids[2], 0, false],
    ]);
  });

  it('rows of one key go out one after another even when the batch holds many keys', async () => {
    const widgets = [newId(), newId(), newId()];
    const written = await Promise.all(widgets.map((widgetId) => renameSeveralTimes(database, widgetId, 5)));
    // Each publish takes a different time, so concurrent keys really interleave.
    let calls = 0;
    publisher = new RecordingPublisher(() => new Promise((resolve) => setTimeout(resolve, (calls++ * 7) % 5)));
    await expect(relay().publishPending()).resolves.toEqual({ published: 15, failed: 0 });
    for (const ids of written) {
      const received = publisher.received.map((envelope) => envelope.id).filter((id) => ids.includes(id));
      expect(received).toEqual(ids);
    }
  });

  it('delivers more rows than one batch, in order', async () => {
    const widgetId = newId();
    const ids = await renameSeveralTimes(database, widgetId, 25);
    await expect(relay({ batchSize: 4 }).publishPending()).resolves.toEqual({ published: 25, failed: 0 });
    expect(publisher.received.map((envelope) => envelope.id)).toEqual(ids);
  });

  it('a task row without an idempotency key is enqueued with its row id as the key and the captured context', async () => {
    const context = { correlationId: 'req-task', userId: newId() };
    const input = { widgetId: newId(), amount: 4 };
    const rowId = await runWithContext(context, () => database.db.transaction((tx) => outbox.task(tx, restockWidget, input)));

    await expect(relay().publishPending()).resolves.toEqual({ published: 1, failed: 0 });
    const [enqueued] = tasks.received;
    expect(enqueued?.task).toBe(restockWidget);
    expect(enqueued?.input).toEqual(input);
    expect(enqueued?.options).toEqual({ idempotencyKey: rowId, context });
    expect(enqueued?.jobId).toBe(derivedId('task', 'widgets.restock', rowId));
  });

  it('re-delivering a task row that was enqueued but not marked sent (crash) reuses its idempotency key', async () => {
    const rowId = await database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: 1 }));
    const manual = relay();
    await manual.publishPending();
    // The crash: the enqueue happened, marking the row sent did not commit.
    await database.db.update(outboxTable).set({ sentAt: null }).where(eq(outboxTable.id, rowId));
    await manual.publishPending();
    expect(tasks.received.map((item) => item.options.idempotencyKey)).toEqual([rowId, rowId]);
    expect(new Set(tasks.received.map((item) => item.jobId)).size).toBe(1);
  });

  it('a task delay counts from the write, not from the relay', async () => {
    await database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: 1 }, { delayMs: 60_000 }));
    await database.db.update(outboxTable).set({ createdAt: sql`now() - interval '10 seconds'` });
    await relay().publishPending();
    const delayMs = tasks.received[0]?.options.delayMs ?? -1;
    expect(delayMs).toBeGreaterThan(45_000);
    expect(delayMs).toBeLessThanOrEqual(50_000);
  });

  it('an unknown task name is recorded as an error and the row is kept, never dropped', async () => {
    const unknownTask: TaskDefinition = { ...restockWidget, name: 'widgets.unknown' };
    const rowId = await database.db.transaction((tx) => outbox.task(tx, unknownTask, { widgetId: newId(), amount: 1 }));
    await expect(relay({ backoff: { baseMs: 60_000 } }).publishPending()).resolves.toEqual({ published: 0, failed: 1 });
    expect(tasks.received).toHaveLength(0);
    const [row] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, rowId));
    expect(row?.sentAt).toBeNull();
    expect(row?.attempts).toBe(1);
    expect(row?.lastError).toMatch(/Unknown task "widgets.unknown"/);
    expect(row!.availableAt.getTime()).toBeGreaterThan(Date.now() + 30_000);
  });

  it('when the task queue fails, the task is retried after backoff and enqueued once', async () => {
    tasks.failNext(1);
    const rowId = await database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: 1 }));
    relay({ backoff: { baseMs: 10 } }).start();
    const [enqueued] = await tasks.waitFor(1);
    expect(enqueued?.options.idempotencyKey).toBe(rowId);
    expect(tasks.failures).toBe(1);
  });

  it('deletes delivered rows older than retainSentMs and keeps pending ones', async () => {
    await createWidget(database);
    await createWidget(database);
    const cleaning = relay({ retainSentMs: 0, cleanupIntervalMs: 0 });
    await cleaning.publishPending();
    publisher.failNext(1);
    const pending = await createWidget(database);
    // This pass first deletes the two delivered rows, then fails to deliver the new one.
    await expect(cleaning.publishPending()).resolves.toEqual({ published: 0, failed: 1 });
    const rows = await database.db.select({ id: outboxTable.id }).from(outboxTable);
    expect(rows.map((row) => row.id)).toEqual([pending]);

    const keeping = relay({ retainSentMs: 60 * 60 * 1000 });
    await database.db.update(outboxTable).set({ availableAt: sql`now()` });
    await keeping.publishPending();
    await expect(keeping.purgeSent()).resolves.toBe(0);
    expect(await database.db.select().from(outboxTable)).toHaveLength(1);
  });

  it('forgets inbox rows older than retainInboxMs in its cleanup, keeping the recent ones', async () => {
    await database.db.delete(inboxTable);
    const [old, recent] = [newId(), newId()];
    await database.db.insert(inboxTable).values([
      { consumerGroup: 'relay-test', eventId: old, processedAt: sql`now() - interval '9 days'` },
      { consumerGroup: 'relay-test', eventId: recent },
    ]);
    await relay({ cleanupIntervalMs: 0 }).publishPending();
    const left = await database.db.select({ eventId: inboxTable.eventId }).from(inboxTable);
    expect(left.map((row) => row.eventId)).toEqual([recent]);

    // 0 keeps them all.
    await database.db.insert(inboxTable).values({ consumerGroup: 'relay-test', eventId: old, processedAt: sql`now() - interval '30 days'` });
    await relay({ cleanupIntervalMs: 0, retainInboxMs: 0 }).publishPending();
    expect(await database.db.select().from(inboxTable)).toHaveLength(2);
  });

  it('reports civildiy_outbox_pending (collected) and civildiy_outbox_published_total{kind,outcome}', async () => {
    const registry = new Registry();
    publisher.failNext(1);
    await renameSeveralTimes(database, newId(), 2); // one key: the second waits behind the failed first
    const started = relay({ registry, backoff: { baseMs: 60_000 } });
    relay({ registry }); // a second relay on the same registry reuses the metrics
    await started.publishPending();
    started.start();

    const pending = await registry.getSingleMetric('civildiy_outbox_pending')!.get();
    expect(pending.values[0]?.value).toBe(2);
    await database.db.update(outboxTable).set({ availableAt: sql`now()` });
    await started.publishPending();
    const metrics = await registry.metrics();
    expect(metrics).toContain('civildiy_outbox_published_total{kind="event",outcome="failed"} 1');
    expect(metrics).toContain('civildiy_outbox_published_total{kind="event",outcome="sent"} 2');
    expect(metrics).toContain('civildiy_outbox_pending 0');
  });
});

describe.each(databaseTargets)('outbox relay after a crash on $name (in-test publisher and task enqueuer)', (target) => {
  let location: DatabaseLocation;
  afterAll(() => location.remove());

  it('rows committed but never published before the process died are delivered exactly once by the next relay', async () => {
    location = await target.createLocation();
    const before = await location.open();
    const widget = { id: newId(), name: 'crash', quantity: 1 };
    const { eventId, taskId } = await before.db.transaction(async (tx) => {
      await tx.insert(widgets).values(widget);
      return {
        eventId: await outbox.event(tx, widgetCreated, widget),
        taskId: await outbox.task(tx, restockWidget, { widgetId: widget.id, amount: 2 }),
      };
    });
    // The process dies after the commit, before any relay ran.
    await before.close();

    const after = await location.open();
    const publisher = new RecordingPublisher();
    const tasks = new RecordingTaskEnqueuer();
    const relay = new OutboxRelay({ db: after.db, publisher, tasks, logger: quietLogger, registry: new Registry(), pollIntervalMs: 60_000 });
    try {
      relay.start();
      const [envelope] = await publisher.waitFor(1);
      const [enqueued] = await tasks.waitFor(1);
      await expect(relay.publishPending()).resolves.toEqual({ published: 0, failed: 0 });
      expect(envelope).toMatchObject({ id: eventId, data: widget });
      expect(enqueued?.options.idempotencyKey).toBe(taskId);
      expect(publisher.received).toHaveLength(1);
      expect(tasks.received).toHaveLength(1);
    } finally {
      await relay.stop();
      await after.close();
    }
  });
});

describe('two outbox relays on one Postgres database (two processes of a service; in-test publishers)', () => {
  let location: DatabaseLocation;
  let database: FixtureDatabase;
  let other: FixtureDatabase;

  beforeAll(async () => {
    location = await postgresTarget.createLocation();
    database = await location.open();
    other = await location.open();
  });
  afterAll(async () => {
    await Promise.all([database.close(), other.close()]);
    await location.remove();
  });
  beforeEach(async () => {
    await database.db.delete(outboxTable);
  });

  function gate() {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    return { open, opened };
  }

  it('while one relay holds a batch, the other delivers the next rows (SKIP LOCKED), and no row is sent twice', async () => {
    const ids: string[] = [];
    for (let index = 0; index < 20; index++) ids.push(await createWidget(database));

    const entered = gate();
    const release = gate();
    const publisherA = new RecordingPublisher(async () => {
      entered.open();
      await release.opened;
    });
    const publisherB = new RecordingPublisher();
    const tasks = new RecordingTaskEnqueuer();
    const options = { logger: quietLogger, tasks, batchSize: 10, pollIntervalMs: 60_000 };
    const relayA = new OutboxRelay({ ...options, db: database.db, publisher: publisherA, registry: new Registry() });
    const relayB = new OutboxRelay({ ...options, db: other.db, publisher: publisherB, registry: new Registry() });

    const passA = relayA.publishPending();
    await entered.opened; // relay A has locked rows 1–10 and is publishing the first
    await expect(relayB.publishPending()).resolves.toEqual({ published: 10, failed: 0 });
    release.open();
    await expect(passA).resolves.toEqual({ published: 10, failed: 0 });

    expect(publisherA.received.map((envelope) => envelope.id)).toEqual(ids.slice(0, 10));
    expect(publisherB.received.map((envelope) => envelope.id)).toEqual(ids.slice(10));
    const pending = await database.db.select().from(outboxTable).where(sql`${outboxTable.sentAt} is null`);
    expect(pending).toHaveLength(0);
  });

  it('a relay does not overtake a row of the same key that another relay is delivering', async () => {
    const widgetId = newId();
    const [first, second] = await renameSeveralTimes(database, widgetId, 2);
    const otherKey = await createWidget(database);

    const entered = gate();
    const release = gate();
    const publisherA = new RecordingPublisher(async () => {
      entered.open();
      await release.opened;
    });
    const publisherB = new RecordingPublisher();
    const tasks = new RecordingTaskEnqueuer();
    const relayA = new OutboxRelay({ db: database.db, publisher: publisherA, tasks, logger: quietLogger, batchSize: 1, registry: new Registry() });
    const relayB = new OutboxRelay({ db: other.db, publisher: publisherB, tasks, logger: quietLogger, batchSize: 10, registry: new Registry() });

    const passA = relayA.publishPending(); // one row per batch: it locks only the first rename
    await entered.opened;
    await expect(relayB.publishPending()).resolves.toEqual({ published: 1, failed: 0 });
    expect(publisherB.received.map((envelope) => envelope.id)).toEqual([otherKey]);
    release.open();
    await passA;
    await relayB.publishPending();
    const delivered = [...publisherA.received, ...publisherB.received].filter((envelope) => envelope.key === widgetId);
    expect(delivered.map((envelope) => envelope.id)).toEqual([first, second]);
  });

  it('two relays running concurrently deliver every row exactly once', async () => {
    const ids: string[] = [];
    for (let index = 0; index < 60; index++) ids.push(await createWidget(database));
    const log: string[] = [];
    const slow = () => async (envelope: { id: string }) => {
      await new Promise((resolve) => setImmediate(resolve));
      log.push(envelope.id);
    };
    const publishers = [new RecordingPublisher(slow()), new RecordingPublisher(slow())];
    const tasks = new RecordingTaskEnqueuer();
    const relaysOnTwoPools = [database, other].map(
      (opened, index) =>
        new OutboxRelay({ db: opened.db, publisher: publishers[index]!, tasks, logger: quietLogger, batchSize: 5, pollIntervalMs: 60_000, registry: new Registry() }),
    );
    relaysOnTwoPools.forEach((started) => started.start());
    try {
      while (log.length < 60) {
        await Promise.all(relaysOnTwoPools.map((started) => started.publishPending()));
      }
    } finally {
      await Promise.all(relaysOnTwoPools.map((started) => started.stop()));
    }
    expect(log).toHaveLength(60);
    expect(new Set(log).size).toBe(60);
    expect(new Set(log)).toEqual(new Set(ids));
  });
});
