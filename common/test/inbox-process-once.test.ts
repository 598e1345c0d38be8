import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DbTransaction } from '../src/db/index.ts';
import { createEnvelope } from '../src/events/define.ts';
import { newId } from '../src/ids/index.ts';
import { inboxCleanup, inboxTable, processOnce } from '../src/outbox/index.ts';
import { widgetCreated } from './fixtures/db-fixture/contracts.ts';
import { databaseTargets, fixtureSchema, postgresTarget, type DatabaseLocation, type FixtureDatabase } from './fixtures/db-fixture/targets.ts';

const { widgets } = fixtureSchema;

function widgetEvent() {
  return createEnvelope(widgetCreated, { id: newId(), name: `w-${newId()}`, quantity: 1 });
}

describe.each(databaseTargets)('inbox on $name', (target) => {
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

  /** The projection under test: stores the widget from the event. */
  const project = (envelope: ReturnType<typeof widgetEvent>) => (tx: DbTransaction<typeof fixtureSchema>) => tx.insert(widgets).values(envelope.data);

  it('processes a new event and skips it when it is delivered again (handler not run)', async () => {
    const envelope = widgetEvent();
    let runs = 0;
    const handle = async (tx: DbTransaction<typeof fixtureSchema>) => {
      runs += 1;
      await project(envelope)(tx);
    };
    await expect(processOnce(database.db, 'projection', envelope, handle)).resolves.toEqual({ processed: true });
    await expect(processOnce(database.db, 'projection', envelope, handle)).resolves.toEqual({ processed: false });
    expect(runs).toBe(1);
    expect(await database.db.select().from(widgets).where(eq(widgets.id, envelope.data.id))).toHaveLength(1);
  });

  it('each consumer group processes the event once on its own', async () => {
    const envelope = widgetEvent();
    const groups: string[] = [];
    const results: boolean[] = [];
    for (const group of ['feed', 'search', 'feed']) {
      const result = await processOnce(database.db, group, envelope, async () => {
        groups.push(group);
      });
      results.push(result.processed);
    }
    expect(results).toEqual([true, true, false]);
    expect(groups).toEqual(['feed', 'search']);
  });

  it('a failing handler rolls back its writes and the inbox row, so the next delivery processes the event', async () => {
    const envelope = widgetEvent();
    await expect(
      processOnce(database.db, 'projection', envelope, async (tx) => {
        await project(envelope)(tx);
        throw new Error('projection store unavailable');
      }),
    ).rejects.toThrow('projection store unavailable');
    expect(await database.db.select().from(widgets).where(eq(widgets.id, envelope.data.id))).toHaveLength(0);
    expect(await database.db.select().from(inboxTable).where(eq(inboxTable.eventId, envelope.id))).toHaveLength(0);

    await expect(processOnce(database.db, 'projection', envelope, project(envelope))).resolves.toEqual({ processed: true });
    expect(await database.db.select().from(widgets).where(eq(widgets.id, envelope.data.id))).toHaveLength(1);
  });

  it('inboxCleanup deletes entries processed longer ago than the given age', async () => {
    const old = widgetEvent();
    const recent = widgetEvent();
    await processOnce(database.db, 'cleanup', old, async () => undefined);
    await processOnce(database.db, 'cleanup', recent, async () => undefined);
    await database.db.update(inboxTable).set({ processedAt: sql`now() - interval '8 days'` }).where(eq(inboxTable.eventId, old.id));

    await expect(inboxCleanup(database.db, 7 * 24 * 60 * 60 * 1000)).resolves.toBe(1);
    const left = await database.db.select().from(inboxTable).where(eq(inboxTable.consumerGroup, 'cleanup'));
    expect(left.map((row) => row.eventId)).toEqual([recent.id]);
  });
});

describe('inbox on a Postgres server, one event delivered to two consumers at once', () => {
  let location: DatabaseLocation;
  let first: FixtureDatabase;
  let second: FixtureDatabase;

  beforeAll(async () => {
    location = await postgresTarget.createLocation();
    [first, second] = await Promise.all([location.open(), location.open()]);
  });
  afterAll(async () => {
    await Promise.all([first.close(), second.close()]);
    await location.remove();
  });

  it('the second waits for the first and skips the event; the handler runs once', async () => {
    const envelope = widgetEvent();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const firstInside = new Promise<void>((resolve) => (entered = resolve));
    let runs = 0;

    const one = processOnce(first.db, 'projection', envelope, async () => {
      runs += 1;
      entered();
      await released;
    });
    await firstInside;
    const two = processOnce(second.db, 'projection', envelope, async () => {
      runs += 1;
    });
    release();
    await expect(Promise.all([one, two])).resolves.toEqual([{ processed: true }, { processed: false }]);
    expect(runs).toBe(1);
  });
});
