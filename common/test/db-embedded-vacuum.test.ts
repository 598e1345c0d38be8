import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedVacuum } from '../src/db/index.ts';
import { databaseTargets, quietLogger, type DatabaseLocation, type FixtureDatabase } from './fixtures/db-fixture/targets.ts';

const pglite = databaseTargets.find((target) => target.name.startsWith('PGlite'))!;

describe('vacuum of an embedded database (PGlite has no autovacuum)', () => {
  let location: DatabaseLocation;
  let database: FixtureDatabase;

  beforeAll(async () => {
    location = await pglite.createLocation();
    database = await location.open();
  });
  afterAll(async () => {
    await database.close();
    await location.remove();
  });

  it('vacuums and analyses the database on its interval, so the planner gets statistics', async () => {
    await database.db.execute(sql`create table vacuum_probe (id int primary key, n int)`);
    await database.db.execute(sql`insert into vacuum_probe select g, 0 from generate_series(1, 500) g`);
    await database.db.execute(sql`update vacuum_probe set n = n + 1`);
    const tuples = async () => {
      const result = await database.db.execute<{ reltuples: number }>(sql`select reltuples::int as reltuples from pg_class where relname = 'vacuum_probe'`);
      return Number(result.rows[0]?.reltuples);
    };
    // Never analysed: Postgres says -1.
    expect(await tuples()).toBe(-1);

    const stop = startEmbeddedVacuum(database.db, { intervalMs: 50, logger: quietLogger });
    try {
      await expect.poll(tuples, { timeout: 10_000, interval: 50 }).toBe(500);
    } finally {
      stop();
    }
  });
});
