import { eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DbTransaction } from '../src/db/index.ts';
import { createEnvelope } from '../src/events/define.ts';
import { newId } from '../src/ids/index.ts';
import { InboxBatcher, inboxTable } from '../src/outbox/index.ts';
import { widgetCreated } from './fixtures/db-fixture/contracts.ts';
import { databaseTargets, fixtureSchema, type DatabaseLocation, type FixtureDatabase } from './fixtures/db-fixture/targets.ts';

const { widgets } = fixtureSchema;

type WidgetEnvelope = ReturnType<typeof widgetEvent>;

/** A widget event; its name is `label:<unique>` (names are unique), compared by label. */
function widgetEvent(options: { id?: string; label?: string } = {}) {
  return createEnvelope(widgetCreated, { id: options.id ?? newId(), name: `${options.label ?? 'w'}:${newId()}`, quantity: 1 });
}

const labelOf = (envelope: WidgetEnvelope) => envelope.data.name.split(':')[0]!;

/** A gate the projection waits at, to hold a transaction open while more events arrive. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe.each(databaseTargets)('InboxBatcher on $name', (target) => {
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

  /**
   * A batcher whose projection stores each widget (upserting its name, so a widget seen twice shows
   * the later name), fails on a widget named `poison`, records the events of every call, and waits
   * at `hold` (when given) in its first call.
   */
  function batcher(group: string, options: { maxBatch?: number; hold?: Promise<void>; entered?: () => void } = {}) {
    const calls: string[][] = [];
    const sizes: number[] = [];
    const inbox = new InboxBatcher({
      db: database.db,
      group,
      keyOf: (envelope: WidgetEnvelope) => envelope.data.id,
      ...(options.maxBatch ? { maxBatch: options.maxBatch } : {}),
      onBatch: (size) => sizes.push(size),
      apply: async (tx: DbTransaction<typeof fixtureSchema>, envelopes) => {
        calls.push(envelopes.map(labelOf));
        if (calls.length === 1 && options.hold) {
          options.entered?.();
          await options.hold;
        }
        for (const envelope of envelopes) {
          await tx.insert(widgets).values(envelope.data).onConflictDoUpdate({ target: widgets.id, set: { name: envelope.data.name } });
        }
        if (envelopes.some((envelope) => labelOf(envelope) === 'poison')) throw new Error('cannot project a poison widget');
        return envelopes.map((envelope) => `stored ${labelOf(envelope)}`);
      },
    });
    return { inbox, calls, sizes };
  }

  const stored = async (ids: string[]) => (await database.db.select().from(widgets).where(inArray(widgets.id, ids))).map((row) => row.name.split(':')[0]).sort();
  const inInbox = async (group: string, envelopes: WidgetEnvelope[]) =>
    (await database.db.select().from(inboxTable).where(inArray(inboxTable.eventId, envelopes.map((envelope) => envelope.id)))).filter((row) => row.consumerGroup === group).length;

  it('applies the events that arrive while a transaction runs together in the next one, each resolved with its result', async () => {
    const held = gate();
    const inside = gate();
    const { inbox, calls, sizes } = batcher('together', { hold: held.opened, entered: inside.open });
    const first = widgetEvent({ label: 'first' });
    const rest = ['a', 'b', 'c', 'd'].map((label) => widgetEvent({ label }));

    const firstDone = inbox.process(first);
    await inside.opened;
    const restDone = rest.map((envelope) => inbox.process(envelope));
    expect(inbox.queued).toBe(4);
    held.open();

    await expect(firstDone).resolves.toEqual({ processed: true, result: 'stored first' });
    await expect(Promise.all(restDone)).resolves.toEqual(['a', 'b', 'c', 'd'].map((name) => ({ processed: true, result: `stored ${name}` })));
    expect(calls).toEqual([['first'], ['a', 'b', 'c', 'd']]);
    expect(sizes).toEqual([1, 4]);
    expect(await stored([first, ...rest].map((envelope) => envelope.data.id))).toEqual(['a', 'b', 'c', 'd', 'first']);
    expect(await inInbox('together', [first, ...rest])).toBe(5);
  });

  it('skips events the group has processed (a redelivery), without applying them, while applying the new ones of the batch', async () => {
    const { inbox, calls } = batcher('redelivery');
    const seen = widgetEvent({ label: 'seen' });
    await inbox.process(seen);
    const fresh = widgetEvent({ label: 'fresh' });
    const [again, next] = await Promise.all([inbox.process(seen), inbox.process(fresh)]);
    expect(again).toEqual({ processed: false });
    expect(next).toEqual({ processed: true, result: 'stored fresh' });
    expect(calls.flat()).toEqual(['seen', 'fresh']);
  });

  it('puts at most one event per key and at most maxBatch events in a batch, keeping the order of a key', async () => {
    const held = gate();
    const inside = gate();
    const { inbox, calls } = batcher('keys', { maxBatch: 3, hold: held.opened, entered: inside.open });
    const id = newId();
    const done = [inbox.process(widgetEvent({ label: 'opener' }))];
    await inside.opened;
    const waiting = [
      widgetEvent({ id, label: 'v1' }),
      widgetEvent({ id, label: 'v2' }),
      widgetEvent({ label: 'x' }),
      widgetEvent({ label: 'y' }),
      widgetEvent({ label: 'z' }),
    ];
    done.push(...waiting.map((envelope) => inbox.process(envelope)));
    held.open();
    await Promise.all(done);
    expect(calls).toEqual([['opener'], ['v1', 'x', 'y'], ['v2', 'z']]);
    expect(await stored([id])).toEqual(['v2']);
  });

  it('when a batch fails, applies its events one per transaction: the one that fails alone rejects and leaves no trace, the others commit', async () => {
    const held = gate();
    const inside = gate();
    const { inbox, calls } = batcher('poison', { hold: held.opened, entered: inside.open });
    const opener = inbox.process(widgetEvent({ label: 'opener' }));
    await inside.opened;
    const good = widgetEvent({ label: 'good' });
    const poison = widgetEvent({ label: 'poison' });
    const later = widgetEvent({ label: 'later' });
    const outcomes = Promise.allSettled([good, poison, later].map((envelope) => inbox.process(envelope)));
    held.open();
    await opener;

    const [goodOutcome, poisonOutcome, laterOutcome] = await outcomes;
    expect(goodOutcome).toEqual({ status: 'fulfilled', value: { processed: true, result: 'stored good' } });
    expect(poisonOutcome).toMatchObject({ status: 'rejected', reason: { message: 'cannot project a poison widget' } });
    expect(laterOutcome).toEqual({ status: 'fulfilled', value: { processed: true, result: 'stored later' } });
    expect(calls).toEqual([['opener'], ['good', 'poison', 'later'], ['good'], ['poison'], ['later']]);
    expect(await stored([good, poison, later].map((envelope) => envelope.data.id))).toEqual(['good', 'later']);
    expect(await inInbox('poison', [poison])).toBe(0);
    expect(await inInbox('poison', [good, later])).toBe(2);

    // The rejected event is applied on its next delivery once it can be.
    const { inbox: fixed } = batcher('poison');
    const retried = { ...poison, data: { ...poison.data, name: `cured:${newId()}` } };
    await expect(fixed.process(retried)).resolves.toEqual({ processed: true, result: 'stored cured' });
  });

  it('an event alone whose projection fails rolls back its inbox row and writes', async () => {
    const { inbox } = batcher('alone');
    const poison = widgetEvent({ label: 'poison' });
    await expect(inbox.process(poison)).rejects.toThrow('cannot project a poison widget');
    expect(await database.db.select().from(widgets).where(eq(widgets.id, poison.data.id))).toHaveLength(0);
    expect(await inInbox('alone', [poison])).toBe(0);
  });
});
