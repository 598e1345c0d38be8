import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { types } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUniqueViolation } from '../src/db/index.ts';
import { PGliteClient, type PGliteDriverClient } from '../src/db/pglite-client.ts';
import { PGliteThread } from '../src/db/pglite-thread.ts';

/** The parsers Drizzle passes with every query: the text of dates, times and intervals. */
const drizzleParsers = Object.fromEntries([types.TIMESTAMP, types.TIMESTAMPTZ, types.INTERVAL, types.DATE, 1231, 1115, 1185, 1187, 1182].map((type) => [type, (value: string) => value]));

const clients: { name: string; open: (dataDir: string) => Promise<PGliteDriverClient> }[] = [
  { name: 'PGliteClient (in-process)', open: (dataDir) => PGliteClient.create(dataDir) },
  { name: 'PGliteThread (worker thread)', open: (dataDir) => PGliteThread.create(dataDir) },
];

describe.each(clients)('$name', ({ open }) => {
  let dataDir: string;
  let client: PGliteDriverClient;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'civildiy-pglite-client-'));
    client = await open(dataDir);
    await client.exec(`
      create table items (id int primary key, name text not null unique, at timestamptz not null, ats timestamptz[] not null, span interval);
      insert into items values (1, 'one', '2026-11-22T10:00:00Z', array['2026-11-22T10:00:00Z'::timestamptz], '1 day');
    `);
  });
  afterAll(async () => {
    await client.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('answers parameterised queries in object and array row modes', async () => {
    const objects = await client.query<{ id: number; name: string }>('select id, name from items where id = $1', [1]);
    expect(objects.rows).toEqual([{ id: 1, name: 'one' }]);
    expect(objects.fields.map((field) => field.name)).toEqual(['id', 'name']);
    const arrays = await client.query<unknown[]>('select id, name from items where name = $1', ['one'], { rowMode: 'array' });
    expect(arrays.rows).toEqual([[1, 'one']]);
  });

  it('returns dates, times and intervals as Postgres text when the caller passes Drizzle’s parsers, and parses them as PGlite does otherwise', async () => {
    const asText = await client.query<{ at: unknown; ats: unknown; span: unknown }>('select at, ats, span from items where id = 1', [], { parsers: drizzleParsers });
    expect(asText.rows[0]).toEqual({ at: '2026-11-22 10:00:00+00', ats: '{"2026-11-22 10:00:00+00"}', span: '1 day' });

    const parsed = await client.query<{ at: unknown; ats: unknown }>('select at, ats from items where id = 1');
    expect(parsed.rows[0]?.at).toEqual(new Date('2026-11-22T10:00:00Z'));
    expect(parsed.rows[0]?.ats).toEqual([new Date('2026-11-22T10:00:00Z')]);

    const custom = await client.query<unknown[]>('select at from items where id = 1', [], { rowMode: 'array', parsers: { [types.TIMESTAMPTZ]: (value: string) => `<${value}>` } });
    expect(custom.rows).toEqual([['<2026-11-22 10:00:00+00>']]);
  });

  it('raises Postgres errors with their code and constraint, so unique violations are recognised', async () => {
    const error = await client.query("insert into items values (2, 'one', now(), '{}', null)").catch((caught: unknown) => caught);
    expect(isUniqueViolation(error, 'items_name_key')).toBe(true);
    expect(error).toMatchObject({ code: '23505', constraint: 'items_name_key' });
  });

  it('commits a transaction that resolves and rolls back one that throws or calls rollback()', async () => {
    await client.transaction(async (tx) => {
      await tx.query("insert into items values (10, 'ten', now(), '{}', null)");
    });
    await expect(
      client.transaction(async (tx) => {
        await tx.query("insert into items values (11, 'eleven', now(), '{}', null)");
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    let closedAfterRollback = false;
    await client.transaction(async (tx) => {
      await tx.query("insert into items values (12, 'twelve', now(), '{}', null)");
      await tx.rollback();
      closedAfterRollback = tx.closed;
    });
    expect(closedAfterRollback).toBe(true);
    const { rows } = await client.query<{ id: number }>('select id from items where id >= 10 order by id');
    expect(rows).toEqual([{ id: 10 }]);
  });

  it('rolls back a transaction whose statement failed, and serves the next one normally', async () => {
    await expect(
      client.transaction(async (tx) => {
        await tx.query("insert into items values (20, 'twenty', now(), '{}', null)");
        await tx.query("insert into items values (21, 'one', now(), '{}', null)");
      }),
    ).rejects.toMatchObject({ code: '23505' });
    const { rows } = await client.query<{ count: number }>('select count(*)::int as count from items where id in (20, 21)');
    expect(rows[0]?.count).toBe(0);
  });

  it('runs a statement sent during a transaction after it ends, as PGlite’s single session does', async () => {
    let outside: Promise<number | undefined> | undefined;
    let answeredDuringTransaction: boolean | undefined;
    await client.transaction(async (tx) => {
      await tx.query("insert into items values (30, 'thirty', now(), '{}', null)");
      let answered = false;
      outside = client.query<{ count: number }>('select count(*)::int as count from items where id = 30').then((result) => {
        answered = true;
        return result.rows[0]?.count;
      });
      // Sent after the outside statement: answered first only if the outside one waits for the transaction.
      await tx.query('select 1');
      answeredDuringTransaction = answered;
    });
    expect(answeredDuringTransaction).toBe(false);
    expect(await outside).toBe(1);
  });

  it('runs several statements with exec and returns one result per statement', async () => {
    const results = await client.exec("select 1 as a; select 'x' as b, '2026-01-01'::date as d");
    expect(results.map((result) => result.rows)).toEqual([[{ a: 1 }], [{ b: 'x', d: new Date('2026-01-01T00:00:00Z') }]]);
  });

  it('keeps what was committed across a close and a reopen of the data folder', async () => {
    await client.close();
    expect(client.closed).toBe(true);
    await expect(client.query('select 1')).rejects.toThrow();
    client = await open(dataDir);
    const { rows } = await client.query<{ id: number }>('select id from items order by id');
    expect(rows.map((row) => row.id)).toEqual([1, 10, 30]);
  });
});

describe('PGliteThread when its worker dies', () => {
  it('rejects the pending and later calls and reports the death once', async () => {
    const deaths: Error[] = [];
    const thread = await PGliteThread.create('memory://dies', { onExit: (error) => deaths.push(error) });
    await thread.exec('create table t (n int)');
    const pending = thread.query('select pg_sleep(0.2)');
    await (thread as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await expect(pending).rejects.toThrow(/database thread exited/);
    await expect(thread.query('select 1')).rejects.toThrow(/database thread exited/);
    expect(thread.closed).toBe(true);
    expect(deaths).toHaveLength(1);
    await thread.close();
  });

  it('refuses parsers for other types than dates, times and intervals (functions cannot cross the thread)', async () => {
    const thread = await PGliteThread.create('memory://parsers');
    try {
      await expect(thread.query('select 1 as n', [], { parsers: { [types.INT4]: (value: string) => Number(value) * 2 } })).rejects.toThrow(TypeError);
    } finally {
      await thread.close();
    }
  });
});

describe('PGliteThread and in-process PGlite', () => {
  it('give the same rows for every common column type, with simple parameters and with ones only PGlite can type', async () => {
    const inProcess = await PGliteClient.create('memory://same-a');
    const thread = await PGliteThread.create('memory://same-b');
    try {
      const columns = `select 1::int4 as i4, 9007199254740993::int8 as i8, 1.5::float8 as f8, 2.25::numeric as num, true as yes, 'x'::text as t,
        array['a', 'b,c', null]::text[] as texts, array[1, 2]::int4[] as ints, '{"k": [1, "v"]}'::jsonb as doc, '\\x0102'::bytea as bytes,
        'c3b7a77e-0000-4000-8000-000000000000'::uuid as id, array['c3b7a77e-0000-4000-8000-000000000000']::uuid[] as ids, null::text as nothing`;
      const statements: [string, unknown[]][] = [
        [columns, []],
        ['select $1::text as a, $2::int as b, $3::bool as c, $4::timestamptz as d, $5::float8 as e', ['s', 42, false, new Date('2026-11-22T10:00:00Z'), 0.1]],
        ['select $1::jsonb as doc, $2::bytea as bytes', [{ nested: { list: [1, 2] } }, new Uint8Array([7, 8, 9])]],
      ];
      for (const [sql, params] of statements) {
        for (const rowMode of ['object', 'array'] as const) {
          const expected = await inProcess.query(sql, params, { rowMode });
          const actual = await thread.query(sql, params, { rowMode });
          expect(actual.rows).toEqual(expected.rows);
          expect(actual.fields).toEqual(expected.fields);
        }
      }
      for (const client of [inProcess, thread]) await client.exec('create table counted (n int)');
      const insert = 'insert into counted select generate_series(1, $1::int)';
      expect((await thread.query(insert, [3])).affectedRows).toBe((await inProcess.query(insert, [3])).affectedRows);
    } finally {
      await inProcess.close();
      await thread.close();
    }
  });
});
