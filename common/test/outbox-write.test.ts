import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runWithContext } from '../src/context/index.ts';
import { derivedId, isUuid, newId } from '../src/ids/index.ts';
import { outbox, outboxTable, type OutboxTaskPayload } from '../src/outbox/index.ts';
import { restockWidget, widgetCreated } from './fixtures/db-fixture/contracts.ts';
import { databaseTargets, fixtureSchema, type DatabaseLocation, type FixtureDatabase } from './fixtures/db-fixture/targets.ts';

const { widgets } = fixtureSchema;

describe.each(databaseTargets)('outbox writes on $name', (target) => {
  let location: DatabaseLocation;
  let database: FixtureDatabase;

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
  });

  const context = { correlationId: 'req-123', userId: newId(), causationId: newId() };

  it('an event and a task written in the domain transaction commit with the domain row', async () => {
    const widget = { id: newId(), name: `w-${newId()}`, quantity: 3 };
    const { eventId, taskId } = await runWithContext(context, () =>
      database.db.transaction(async (tx) => {
        await tx.insert(widgets).values(widget);
        const eventId = await outbox.event(tx, widgetCreated, widget);
        const taskId = await outbox.task(tx, restockWidget, { widgetId: widget.id, amount: 5 }, { priority: 2 });
        return { eventId, taskId };
      }),
    );

    const rows = await database.db.select().from(outboxTable).orderBy(asc(outboxTable.createdAt), asc(outboxTable.id));
    expect(rows.map((row) => [row.kind, row.name, row.destination])).toEqual([
      ['event', 'widget.created', 'widgets-events'],
      ['task', 'widgets.restock', 'widgets'],
    ]);
    const [eventRow, taskRow] = rows;
    expect(eventRow?.id).toBe(eventId);
    expect(eventRow?.key).toBe(widget.id);
    expect(eventRow?.sentAt).toBeNull();
    expect(eventRow?.attempts).toBe(0);
    expect(eventRow?.payload).toMatchObject({
      id: eventId,
      type: 'widget.created',
      version: 1,
      topic: 'widgets-events',
      key: widget.id,
      correlationId: 'req-123',
      causationId: context.causationId,
      actor: context.userId,
      data: widget,
    });

    expect(taskRow?.id).toBe(taskId);
    expect(taskRow?.key).toBe(taskId);
    expect(taskRow?.payload).toEqual({
      input: { widgetId: widget.id, amount: 5 },
      options: { priority: 2, idempotencyKey: taskId },
      context,
    } satisfies OutboxTaskPayload);
  });

  it('rolling back the domain transaction leaves no outbox row', async () => {
    const widget = { id: newId(), name: `w-${newId()}`, quantity: 1 };
    await expect(
      database.db.transaction(async (tx) => {
        await tx.insert(widgets).values(widget);
        await outbox.event(tx, widgetCreated, widget);
        await outbox.task(tx, restockWidget, { widgetId: widget.id, amount: 1 });
        throw new Error('payment declined');
      }),
    ).rejects.toThrow('payment declined');
    expect(await database.db.select().from(outboxTable)).toHaveLength(0);
    expect(await database.db.select().from(widgets).where(eq(widgets.id, widget.id))).toHaveLength(0);
  });

  it('bad event data or task input throws at write time, so nothing is written', async () => {
    await expect(database.db.transaction((tx) => outbox.event(tx, widgetCreated, { id: 'not-a-uuid', name: '', quantity: 1.5 }))).rejects.toThrow();
    await expect(
      database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: -1 })),
    ).rejects.toThrow();
    expect(await database.db.select().from(outboxTable)).toHaveLength(0);
  });

  it('a task with an idempotency key gets a row id derived from it, and writing it again is a no-op', async () => {
    const input = { widgetId: newId(), amount: 2 };
    const first = await database.db.transaction((tx) => outbox.task(tx, restockWidget, input, { idempotencyKey: 'restock-1' }));
    const second = await database.db.transaction((tx) => outbox.task(tx, restockWidget, input, { idempotencyKey: 'restock-1' }));
    expect(first).toBe(derivedId('outbox-task', 'widgets.restock', 'restock-1'));
    expect(second).toBe(first);
    const rows = await database.db.select().from(outboxTable);
    expect(rows).toHaveLength(1);
    expect((rows[0]?.payload as OutboxTaskPayload).options.idempotencyKey).toBe('restock-1');
  });

  it('an event with a derived id is written once however often it is written', async () => {
    const widget = { id: newId(), name: 'derived', quantity: 0 };
    const id = derivedId('widget-created', widget.id);
    await database.db.transaction((tx) => outbox.event(tx, widgetCreated, widget, { id }));
    await database.db.transaction((tx) => outbox.event(tx, widgetCreated, widget, { id }));
    const rows = await database.db.select().from(outboxTable);
    expect(rows.map((row) => row.id)).toEqual([id]);
  });

  it('outside any request context a task captures a fresh correlation id', async () => {
    const id = await database.db.transaction((tx) => outbox.task(tx, restockWidget, { widgetId: newId(), amount: 1 }));
    const [row] = await database.db.select().from(outboxTable).where(eq(outboxTable.id, id));
    const payload = row?.payload as OutboxTaskPayload;
    expect(isUuid(payload.context.correlationId)).toBe(true);
    expect(payload.context.userId).toBeUndefined();
  });

  it('rows written in one transaction keep their write order', async () => {
    const ids = await database.db.transaction(async (tx) => {
      const written: string[] = [];
      for (let index = 0; index < 20; index++) {
        written.push(await outbox.event(tx, widgetCreated, { id: newId(), name: `w${index}`, quantity: index }));
      }
      return written;
    });
    const rows = await database.db.select({ id: outboxTable.id }).from(outboxTable).orderBy(asc(outboxTable.createdAt), asc(outboxTable.id));
    expect(rows.map((row) => row.id)).toEqual(ids);
  });
});
