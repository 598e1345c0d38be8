import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isUniqueViolation, migrationsTableFor, openDatabase } from '../src/db/index.ts';
import { newId } from '../src/ids/index.ts';
import {
  databaseTargets,
  fixtureMigrations,
  fixtureSchema,
  postgresTarget,
  quietLogger,
  type DatabaseLocation,
  type FixtureDatabase,
} from './fixtures/db-fixture/targets.ts';

const { widgets } = fixtureSchema;

describe.each(databaseTargets)('database on $name', (target) => {
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

  it('applies every migration once at open, recorded in the service’s own table drizzle.__migrations_fixture', async () => {
    expect(database.kind).toBe(target.kind);
    expect(database.migrations).toEqual({ applied: 2, total: 2 });
    const recorded = await database.db.execute<{ count: number }>(sql`select count(*)::int as count from drizzle.__migrations_fixture`);
    expect(recorded.rows[0]?.count).toBe(2);
    const defaultTable = await database.db.execute<{ exists: boolean }>(sql`select to_regclass('drizzle.__drizzle_migrations') is not null as exists`);
    expect(defaultTable.rows[0]?.exists).toBe(false);
    expect(migrationsTableFor('order-service')).toBe('__migrations_order_service');
  });

  it('runs the custom seed migration, and relational queries work on the schema', async () => {
    const seeded = await database.db.query.widgets.findMany({ where: eq(widgets.name, 'seeded-widget') });
    expect(seeded).toHaveLength(1);
    expect(seeded[0]?.createdAt).toBeInstanceOf(Date);
  });

  it('reopening applies nothing and keeps the data (the seed does not run twice)', async () => {
    const name = `widget-${newId()}`;
    await database.db.insert(widgets).values({ id: newId(), name });
    await database.close();
    database = await location.open();
    expect(database.migrations).toEqual({ applied: 0, total: 2 });
    const rows = await database.db.select().from(widgets).where(eq(widgets.name, name));
    expect(rows).toHaveLength(1);
    const seeded = await database.db.select().from(widgets).where(eq(widgets.name, 'seeded-widget'));
    expect(seeded).toHaveLength(1);
  });

  it('applies only the new migration when one is added later', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'civildiy-migrations-'));
    try {
      await cp(fixtureMigrations, folder, { recursive: true });
      const journalPath = join(folder, 'meta', '_journal.json');
      const journal = JSON.parse(await readFile(journalPath, 'utf8')) as { entries: { idx: number; when: number; tag: string }[] };
      const last = journal.entries.at(-1)!;
      journal.entries.push({ ...last, idx: last.idx + 1, when: last.when + 1, tag: '0002_widget_colour' });
      await writeFile(journalPath, JSON.stringify(journal));
      await writeFile(join(folder, '0002_widget_colour.sql'), 'ALTER TABLE "widgets" ADD COLUMN "colour" text;');

      await database.close();
      database = await location.open({ migrationsFolder: folder });
      expect(database.migrations).toEqual({ applied: 1, total: 3 });
      const column = await database.db.execute<{ count: number }>(
        sql`select count(*)::int as count from information_schema.columns where table_name = 'widgets' and column_name = 'colour'`,
      );
      expect(column.rows[0]?.count).toBe(1);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('rolls a transaction back when its callback throws', async () => {
    const name = `rolled-back-${newId()}`;
    await expect(
      database.db.transaction(async (tx) => {
        await tx.insert(widgets).values({ id: newId(), name });
        throw new Error('business rule broken');
      }),
    ).rejects.toThrow('business rule broken');
    expect(await database.db.select().from(widgets).where(eq(widgets.name, name))).toHaveLength(0);
  });

  it('commits a transaction, and tx.rollback() undoes one', async () => {
    const kept = `kept-${newId()}`;
    const undone = `undone-${newId()}`;
    await database.db.transaction(async (tx) => {
      await tx.insert(widgets).values({ id: newId(), name: kept });
    });
    await database.db
      .transaction(async (tx) => {
        await tx.insert(widgets).values({ id: newId(), name: undone });
        tx.rollback();
      })
      .catch(() => undefined);
    expect(await database.db.select().from(widgets).where(eq(widgets.name, kept))).toHaveLength(1);
    expect(await database.db.select().from(widgets).where(eq(widgets.name, undone))).toHaveLength(0);
  });

  it('isUniqueViolation recognises a duplicate key (SQLSTATE 23505) and its constraint', async () => {
    const name = `unique-${newId()}`;
    await database.db.insert(widgets).values({ id: newId(), name });
    const error = await database.db
      .insert(widgets)
      .values({ id: newId(), name })
      .then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeDefined();
    expect(isUniqueViolation(error)).toBe(true);
    expect(isUniqueViolation(error, 'widgets_name_unique')).toBe(true);
    expect(isUniqueViolation(error, 'widgets_pkey')).toBe(false);

    const notUnique = await database.db.execute(sql`select 1 / 0`).then(() => undefined, (caught: unknown) => caught);
    expect(notUnique).toBeDefined();
    expect(isUniqueViolation(notUnique)).toBe(false);
    expect(isUniqueViolation(new Error('plain'))).toBe(false);
    expect(isUniqueViolation(undefined)).toBe(false);
  });

  it('a unique violation inside a transaction rolls back its other writes', async () => {
    const name = `unique-tx-${newId()}`;
    const other = `other-${newId()}`;
    await database.db.insert(widgets).values({ id: newId(), name });
    const error = await database.db
      .transaction(async (tx) => {
        await tx.insert(widgets).values({ id: newId(), name: other });
        await tx.insert(widgets).values({ id: newId(), name });
      })
      .then(() => undefined, (caught: unknown) => caught);
    expect(isUniqueViolation(error)).toBe(true);
    expect(await database.db.select().from(widgets).where(eq(widgets.name, other))).toHaveLength(0);
  });

  it('ping answers while open and fails after close (close is safe twice)', async () => {
    await expect(database.ping()).resolves.toBeUndefined();
    await database.close();
    await database.close();
    await expect(database.ping()).rejects.toThrow();
    database = await location.open();
    await expect(database.ping()).resolves.toBeUndefined();
  });
});

describe('database on a Postgres server, processes starting together', () => {
  let location: DatabaseLocation;
  afterAll(() => location.remove());

  it('two processes opening at once apply each migration once (advisory lock)', async () => {
    location = await postgresTarget.createLocation();
    const opened = await Promise.all([location.open(), location.open(), location.open()]);
    try {
      expect(opened.map((database) => database.migrations.applied).reduce((a, b) => a + b)).toBe(2);
      const recorded = await opened[0]!.db.execute<{ count: number }>(sql`select count(*)::int as count from drizzle.__migrations_fixture`);
      expect(recorded.rows[0]?.count).toBe(2);
      const seeded = await opened[0]!.db.select().from(widgets).where(eq(widgets.name, 'seeded-widget'));
      expect(seeded).toHaveLength(1);
    } finally {
      await Promise.all(opened.map((database) => database.close()));
    }
  });

  it('an unreachable server rejects the open', async () => {
    await expect(
      openDatabase({ service: 'fixture', url: 'postgres://postgres@127.0.0.1:1/none', dataDir: 'memory://', migrationsFolder: fixtureMigrations }),
    ).rejects.toThrow();
  });
});

describe('embedded PGlite specifics', () => {
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((database) => database.close()));
  });

  it('keeps each service in <dataDir>/<service>, creating the folder', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'civildiy-data-'));
    try {
      const database = await openDatabase({ service: 'orders', dataDir: join(dataDir, 'nested'), migrationsFolder: fixtureMigrations, schema: fixtureSchema, logger: quietLogger });
      opened.push(database);
      expect(database.kind).toBe('pglite');
      expect((await stat(join(dataDir, 'nested', 'orders', 'PG_VERSION'))).isFile()).toBe(true);
      const recorded = await database.db.execute<{ count: number }>(sql`select count(*)::int as count from drizzle.__migrations_orders`);
      expect(recorded.rows[0]?.count).toBe(2);
    } finally {
      await Promise.all(opened.splice(0).map((database) => database.close()));
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('memory:// runs in memory, and extensions.vector loads pgvector', async () => {
    const database = await openDatabase({ service: 'search', dataDir: 'memory://', migrationsFolder: fixtureMigrations, extensions: { vector: true } });
    opened.push(database);
    const distance = await database.db.execute<{ distance: number }>(sql`select '[1,2,3]'::vector <-> '[1,2,5]'::vector as distance`);
    expect(distance.rows[0]?.distance).toBe(2);
  });

  it('rejects a service name that cannot name a folder and a table', async () => {
    await expect(openDatabase({ service: '../escape', dataDir: 'memory://', migrationsFolder: fixtureMigrations })).rejects.toThrow(TypeError);
  });
});
