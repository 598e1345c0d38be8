import { asc, eq, sql } from 'drizzle-orm';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runWithContext } from '../src/context/index.ts';
import type { EnvelopePublisher, EventEnvelope } from '../src/events/define.ts';
import { derivedId, newId } from '../src/ids/index.ts';
import { inboxTable, outbox, OutboxRelay, outboxTable, type OutboxRelayOptions } from '../src/outbox/index.ts';
import { PermanentError } from '../src/errors/index.ts';
import { defineTask, type TaskDefinition, type TaskEnqueuer } from '../src/tasks/define.ts';
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

/**
 * An in-test publisher that keeps key order (as the Kafka adapter does): it holds what it is handed
 * until the test answers, then lands it in the order handed over, or fails all of it.
 */
class KeyOrderPublisher implements EnvelopePublisher {
  readonly keepsKeyOrder = true;
  handedOver: { envelope: EventEnvelope; resolve: () => void; reject: (error: Error) => void }[] = [];
  readonly landed: string[] = [];

  publishEnvelope(envelope: EventEnvelope): Promise<void> {
    return new Promise((resolve, reject) => this.handedOver.push({ envelope, resolve, reject }));
  }

  answerAll(): void {
    for (const item of this.handedOver.splice(0)) {
      this.landed.push(item.envelope.id);
      item.resolve();
    }
  }

  failAll(error: Error): void {
    for (const item of this.handedOver.splice(0)) item.reject(error);
  }
}

/** A promise the test opens when it chooses (to hold a delivery in progress). */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

/** A logger whose error lines the test reads. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** An in-test task queue that refuses every job for good, as a broker rejecting a job does. */
const rejectingTaskQueue: TaskEnqueuer = {
  enqueue: () => Promise.reject(new PermanentError('the queue refuses this job (in-test task queue)', 'tasks.rejected')),
};

/** A task name whose contract is not loaded yet: rows written for it are undeliverable until {@link deploy}. */
function undeployedTask(): TaskDefinition {
  return { ...restockWidget, name: `widgets.deployed-later-x${newId().replace(/-/g, '')}` };
}

/** Loads (registers) the contract of an {@link undeployedTask}, as a deployment of the code would. */
function deploy(task: TaskDefinition): TaskDefinition {
  return defineTask({ name: task.name, queue: task.queue, input: task.input, output: task.output });
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
    const rows = await database.db.select().from(outboxTable).orderBy(asc(outboxTable.createdAt), asc(outboxTable.id));
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

  it('hands a key’s rows over together to a publisher that keeps key order, and they land in order', async () => {
    const widgetId = newId();
    const ids = await renameSeveralTimes(database, widgetId, 4);
    const ordered = new KeyOrderPublisher();
    const pass = relay({ publisher: ordered }).publishPending();
    // All four are handed over before any is answered: one round trip, not four.
    await expect.poll(() => ordered.handedOver.length).toBe(4);
    ordered.answerAll();
    await expect(pass).resolves.toEqual({ published: 4, failed: 0 });
    expect(ordered.landed).toEqual(ids);
  });

  it('when the first of a key’s rows handed over together fails, the later ones wait behind it and land after it', async () => {
    const widgetId = newId();
    const ids = await renameSeveralTimes(database, widgetId, 3);
    const ordered = new KeyOrderPublisher();
    const manual = relay({ publisher: ordered, backoff: { baseMs: 60_000, maxMs: 60_000 } });
    const failing = manual.publishPending();
    await expect.poll(() => ordered.handedOver.length).toBe(3);
    ordered.failAll(new Error('broker away (in-test publisher)'));
    await expect(failing).resolves.toEqual({ published: 0, failed: 1 });
    const rows = await database.db.select().from(outboxTable).orderBy(asc(outboxTable.createdAt), asc(outboxTable.id));
    expect(rows.map((row) => [row.id, row.attempts, row.sentAt === null])).toEqual(ids.map((id, index) => [id, index === 0 ? 1 : 0, true]));
    await expect(manual.publishPending()).resolves.toEqual({ published: 0, failed: 0 });

    await database.db.update(outboxTable).set({ availableAt: sql`now() - interval '1 second'` }).where(eq(outboxTable.id, ids[0]!));
    const retried = manual.publishPending();
    await expect.poll(() => ordered.handedOver.length).toBe(3);
    ordered.answerAll();
    await expect(retried).resolves.toEqual({ published: 3, failed: 0 });
    expect(ordered.landed).toEqual(ids);
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
    // The crash: the enqueue happened, marking the row sent did not commit; then its lease ran out
    // (moved back in time here rather than waited for).
    await database.db.update(outboxTable).set({ sentAt: null, availableAt: sql`now() - interval '1 second'` }).where(eq(outboxTable.id, rowId));
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

  it('while a delivery hangs, every other query of the database is answered: no transaction is open meanwhile', async () => {
    const first = await createWidget(database);
    const entered = gate();
    const release = gate();
    publisher = new RecordingPublisher(async (envelope) => {
      if (envelope.id !== first) return;
      entered.open();
      await release.opened;
    });
    const pass = relay().publishPending();
    await entered.opened;

    // On PGlite one connection serves every query: these would wait for a transaction held across the publish.
    const widgetCount = await database.db.select().from(widgets);
    expect(widgetCount.length).toBeGreaterThan(0);
    const second = await createWidget(database);
    const [leased] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, first));
    expect(leased?.leaseId).not.toBeNull();
    expect(leased?.sentAt).toBeNull();

    release.open();
    await expect(pass).resolves.toEqual({ published: 2, failed: 0 });
    expect(publisher.received.map((envelope) => envelope.id)).toEqual([first, second]);
  });

  it('a delivery that never answers times out: the row is retried after backoff, other keys are delivered, queries go on', async () => {
    const stuck = await createWidget(database);
    const other = await createWidget(database);
    const never = new Promise<void>(() => {});
    publisher = new RecordingPublisher((envelope) => (envelope.id === stuck ? never : Promise.resolve()));
    const pass = relay({ deliveryTimeoutMs: 200, leaseMs: 5_000, backoff: { baseMs: 60_000 } }).publishPending();
    expect(await database.db.select({ id: widgets.id }).from(widgets)).not.toHaveLength(0);

    await expect(pass).resolves.toEqual({ published: 1, failed: 1 });
    expect(publisher.received.map((envelope) => envelope.id)).toEqual([other]);
    const [row] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, stuck));
    expect(row).toMatchObject({ attempts: 1, sentAt: null, failedAt: null, leaseId: null });
    expect(row?.lastError).toMatch(/did not take the message within 200 ms/);
    expect(row!.availableAt.getTime()).toBeGreaterThan(Date.now() + 30_000);
  });

  it('retryWaitingNow() makes rows waiting out a backoff available at once and leaves leased rows alone', async () => {
    const waiting = await createWidget(database);
    publisher.failNext(1);
    const manual = relay({ backoff: { baseMs: 60_000 } });
    await expect(manual.publishPending()).resolves.toEqual({ published: 0, failed: 1 });
    await expect(manual.publishPending()).resolves.toEqual({ published: 0, failed: 0 });

    // A row leased by another relay, in the middle of its delivery.
    const leased = await createWidget(database);
    const entered = gate();
    const release = gate();
    const holding = relay({ publisher: new RecordingPublisher(async () => (entered.open(), release.opened)) });
    const holdingPass = holding.publishPending();
    await entered.opened;

    await expect(manual.retryWaitingNow()).resolves.toBe(1);
    await expect(manual.publishPending()).resolves.toEqual({ published: 1, failed: 0 });
    expect(publisher.received.map((envelope) => envelope.id)).toEqual([waiting]);
    release.open();
    await expect(holdingPass).resolves.toEqual({ published: 1, failed: 0 });
    const [row] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, leased));
    expect(row?.sentAt).toBeInstanceOf(Date);
  });

  it('a task row of an unknown task is marked failed, logged at error and counted, and no longer holds back its key', async () => {
    const registry = new Registry();
    const { logger, lines } = recordingLogger();
    const unknownTask: TaskDefinition = { ...restockWidget, name: 'widgets.unknown' };
    const key = `restock-${newId()}`;
    const unknownId = await database.db.transaction((tx) => outbox.task(tx, unknownTask, { widgetId: newId(), amount: 1 }, { idempotencyKey: key }));
    const laterId = await database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: 2 }, { idempotencyKey: key }));

    const started = relay({ registry, logger });
    await expect(started.publishPending()).resolves.toEqual({ published: 1, failed: 1 });
    expect(tasks.received.map((item) => item.options.idempotencyKey)).toEqual([key]);
    const rows = await database.db.select().from(outboxTable);
    const unknown = rows.find((row) => row.id === unknownId);
    expect(unknown).toMatchObject({ sentAt: null, attempts: 1, leaseId: null });
    expect(unknown?.failedAt).toBeInstanceOf(Date);
    expect(unknown?.lastError).toMatch(/Unknown task "widgets.unknown"/);
    expect(rows.find((row) => row.id === laterId)?.sentAt).toBeInstanceOf(Date);
    expect(lines).toContainEqual(expect.objectContaining({ outboxId: unknownId, code: 'outbox.unknown_task', name: 'widgets.unknown' }));

    started.start(); // a running relay reports its database's counts
    const metrics = await registry.metrics();
    expect(metrics).toContain('civildiy_outbox_failed 1');
    expect(metrics).toContain('civildiy_outbox_pending 0');
    // Not retried: a later pass leaves it alone.
    await expect(relay({ registry }).publishPending()).resolves.toEqual({ published: 0, failed: 0 });
  });

  it('a task row whose input fails its schema, and one the task queue refuses with a PermanentError, are marked failed; a transient error is retried', async () => {
    const badInput = newId();
    await database.db.insert(outboxTable).values({
      id: badInput,
      kind: 'task',
      name: restockWidget.name,
      destination: restockWidget.queue,
      key: badInput,
      // Written by an older contract, say: the current one needs a positive amount.
      payload: { input: { widgetId: newId(), amount: 0 }, options: { idempotencyKey: badInput }, context: { correlationId: 'old' } },
    });
    await expect(relay().publishPending()).resolves.toEqual({ published: 0, failed: 1 });
    const [invalid] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, badInput));
    expect(invalid?.failedAt).toBeInstanceOf(Date);
    expect(invalid?.lastError).toMatch(/Invalid input for task widgets.restock/);

    const refused = await database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: 1 }));
    await expect(relay({ tasks: rejectingTaskQueue }).publishPending()).resolves.toEqual({ published: 0, failed: 1 });
    const [rejected] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, refused));
    expect(rejected?.failedAt).toBeInstanceOf(Date);
    expect(rejected?.lastError).toMatch(/refuses this job/);

    const transient = await database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: 1 }));
    tasks.failNext(1);
    await expect(relay({ backoff: { baseMs: 60_000 } }).publishPending()).resolves.toEqual({ published: 0, failed: 1 });
    const [retried] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, transient));
    expect(retried).toMatchObject({ failedAt: null, sentAt: null, attempts: 1 });
  });

  it('failed rows are listed and redriven one by one or all at once, then delivered by the woken relay', async () => {
    const registry = new Registry();
    const task = undeployedTask();
    const ids: string[] = [];
    for (let index = 0; index < 3; index++) ids.push(await database.db.transaction((tx) => outbox.task(tx, task, { widgetId: newId(), amount: index + 1 })));
    const started = relay({ registry });
    await expect(started.publishPending()).resolves.toEqual({ published: 0, failed: 3 });

    const listed = await started.failed.list();
    expect(listed.map((row) => row.id)).toEqual(ids);
    expect(listed.every((row) => row.failedAt instanceof Date && row.lastError?.includes('Unknown task'))).toBe(true);
    started.start();
    expect(await registry.metrics()).toContain('civildiy_outbox_failed 3');
    await expect(started.failed.redrive(newId())).resolves.toBe(false);

    // The cause is fixed (the contract is deployed), then an operator redrives.
    const deployed = deploy(task);
    await expect(started.failed.redrive(ids[0]!)).resolves.toBe(true);
    const [first] = await tasks.waitFor(1);
    expect(first?.options.idempotencyKey).toBe(ids[0]);
    expect(first?.task).toBe(deployed);
    expect((await started.failed.list()).map((row) => row.id)).toEqual(ids.slice(1));

    await expect(started.failed.redriveAll()).resolves.toBe(2);
    const all = await tasks.waitFor(3);
    expect(all.map((item) => item.options.idempotencyKey)).toEqual(ids);
    await expect(started.failed.list()).resolves.toEqual([]);
    expect(await registry.metrics()).toContain('civildiy_outbox_failed 0');
  });

  it('refuses a delivery timeout that is not shorter than the lease', () => {
    expect(() => relay({ leaseMs: 1_000, deliveryTimeoutMs: 1_000 })).toThrow(TypeError);
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

describe.each(databaseTargets)('outbox relay leases on $name (in-test publishers)', (target) => {
  let location: DatabaseLocation;
  beforeAll(async () => {
    location = await target.createLocation();
  });
  afterAll(() => location.remove());

  it('rows claimed by a relay that died are delivered by another only once its lease has passed, with the same envelope id', async () => {
    const before = await location.open();
    await before.db.delete(outboxTable);
    const id = await createWidget(before);
    const entered = gate();
    const dying = new OutboxRelay({
      db: before.db,
      publisher: new RecordingPublisher(async () => {
        entered.open();
        await new Promise<never>(() => {}); // the process dies in the middle of the publish
      }),
      logger: quietLogger,
      registry: new Registry(),
      leaseMs: 600_000,
      deliveryTimeoutMs: 300_000,
    });
    void dying.publishPending().catch(() => undefined);
    await entered.opened;
    await before.close();

    const after = await location.open();
    const publisher = new RecordingPublisher();
    const survivor = new OutboxRelay({ db: after.db, publisher, logger: quietLogger, registry: new Registry() });
    try {
      await expect(survivor.publishPending()).resolves.toEqual({ published: 0, failed: 0 });
      // The lease has passed (moved back in time here rather than waited for).
      await after.db.update(outboxTable).set({ availableAt: sql`now() - interval '1 second'` }).where(eq(outboxTable.id, id));
      await expect(survivor.publishPending()).resolves.toEqual({ published: 1, failed: 0 });
      expect(publisher.received.map((envelope) => envelope.id)).toEqual([id]);
      const [row] = await after.db.select().from(outboxTable).where(eq(outboxTable.id, id));
      expect(row).toMatchObject({ attempts: 0, leaseId: null });
      expect(row?.sentAt).toBeInstanceOf(Date);
    } finally {
      await after.close();
    }
  });

  it('two relays delivering at the same time keep the rows of each key in order, each row once', async () => {
    const first = await location.open();
    // Two processes on a server; on the embedded database, two relays of one process.
    const second = target.kind === 'postgres' ? await location.open() : first;
    try {
      await first.db.delete(outboxTable);
      const keys = [newId(), newId(), newId(), newId()];
      const written = new Map<string, string[]>();
      for (let round = 0; round < 8; round++) {
        for (const key of keys) written.set(key, [...(written.get(key) ?? []), ...(await renameSeveralTimes(first, key, 1))]);
      }
      const delivered: { key: string; id: string }[] = [];
      let calls = 0;
      const publishing = () =>
        new RecordingPublisher(async (envelope) => {
          // Uneven publish times, so the relays really interleave.
          await new Promise((resolve) => setTimeout(resolve, (calls++ * 7) % 4));
          delivered.push({ key: envelope.key, id: envelope.id });
        });
      const relays = [first, second].map(
        (opened) => new OutboxRelay({ db: opened.db, publisher: publishing(), logger: quietLogger, batchSize: 3, registry: new Registry() }),
      );
      while (delivered.length < 32) {
        await Promise.all(relays.map((started) => started.publishPending()));
      }
      expect(delivered).toHaveLength(32);
      for (const key of keys) {
        expect(delivered.filter((item) => item.key === key).map((item) => item.id)).toEqual(written.get(key));
      }
    } finally {
      await Promise.all([...new Set([first, second])].map((opened) => opened.close()));
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
