import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../src/ids/index.ts';
import { outbox, watchOutboxCommits } from '../src/outbox/index.ts';
import { widgetCreated } from './fixtures/db-fixture/contracts.ts';
import { databaseTargets, fixtureSchema, type DatabaseLocation, type FixtureDatabase } from './fixtures/db-fixture/targets.ts';

const { widgets } = fixtureSchema;

describe.each(databaseTargets)('watchOutboxCommits on $name', (target) => {
  let location: DatabaseLocation;
  let database: FixtureDatabase;
  /** One entry per call: the outbox rows a query started by the call saw (committed rows only). */
  let commits: Promise<number>[] = [];
  const outboxRows = async () => (await database.db.select({ id: fixtureSchema.outboxTable.id }).from(fixtureSchema.outboxTable)).length;

  beforeAll(async () => {
    location = await target.createLocation();
    database = await location.open();
    watchOutboxCommits(database.db, () => {
      commits.push(outboxRows());
    });
  });
  afterAll(async () => {
    await database?.close();
    await location?.remove();
  });
  beforeEach(() => {
    commits = [];
  });

  const widget = () => ({ id: newId(), name: `w-${newId()}`, quantity: 1 });
  /** The calls so far (counted when they happened), with what each one's query saw. */
  const settled = () => Promise.all(commits);

  it('is called once after a transaction that wrote events commits, and the rows are visible by then', async () => {
    const before = await outboxRows();
    await database.db.transaction(async (tx) => {
      const created = widget();
      await tx.insert(widgets).values(created);
      await outbox.event(tx, widgetCreated, created);
      await outbox.event(tx, widgetCreated, widget());
    });

    expect(await settled()).toEqual([before + 2]);
  });

  it('is not called for a transaction that rolls back, nor for one that wrote no outbox row', async () => {
    await expect(
      database.db.transaction(async (tx) => {
        await outbox.event(tx, widgetCreated, widget());
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await database.db.transaction(async (tx) => {
      await tx.insert(widgets).values(widget());
    });
    // A write after both: the only call is its own.
    await database.db.transaction((tx) => outbox.event(tx, widgetCreated, widget()));

    expect(await settled()).toHaveLength(1);
  });

  it('counts a write in a savepoint as a write of its transaction', async () => {
    await database.db.transaction(async (tx) => {
      await tx.transaction((savepoint) => outbox.event(savepoint, widgetCreated, widget()));
    });

    expect(await settled()).toHaveLength(1);
  });

  it('is called right after a write made on the database outside any transaction', async () => {
    const before = await outboxRows();
    await outbox.event(database.db, widgetCreated, widget());

    expect(await settled()).toEqual([before + 1]);
  });
});
