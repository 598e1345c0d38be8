import { sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatabaseUnavailable, openDatabase, type OpenDatabase } from '../src/db/index.ts';
import { newId } from '../src/ids/index.ts';
import { createLogger } from '../src/logging/index.ts';
import { createServiceApp, type App } from '../src/service/index.ts';
import { startPostgresCluster, type PostgresCluster } from '../src/testing/index.ts';
import { fixtureMigrations, fixtureSchema } from './fixtures/db-fixture/targets.ts';

/**
 * A Postgres server that goes away under a service: its own cluster, so the test can restart it
 * without disturbing the other tests. Before this, a client in use emitted an unhandled 'error' event
 * (the pool listens only on idle clients) and the process crashed; the survivors answered 500.
 */
describe('a service on a Postgres server that restarts', () => {
  let cluster: PostgresCluster;
  let database: OpenDatabase<typeof fixtureSchema>;
  let app: App;

  beforeAll(async () => {
    cluster = await startPostgresCluster();
    database = await openDatabase({ service: 'faults', url: cluster.url, dataDir: 'memory://', migrationsFolder: fixtureMigrations, schema: fixtureSchema, connectTimeoutMs: 1_000 });
    app = await createServiceApp({
      name: 'faults-test',
      logger: createLogger({ service: 'faults-test', level: 'silent' }),
      auth: false,
      readiness: { database: () => database.ping() },
    });
    app.post('/slow-write', async () => {
      await database.db.transaction(async (tx) => {
        await tx.insert(fixtureSchema.widgets).values({ id: newId(), name: `slow-${newId()}` });
        await tx.execute(sql`select pg_sleep(30)`);
      });
      return { ok: true };
    });
    app.get('/count', async () => {
      const rows = await database.db.execute<{ n: number }>(sql`select count(*)::int as n from widgets`);
      return { n: rows.rows[0]!.n };
    });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await database?.close();
    await cluster?.remove();
  });

  /** Resolves once a backend of this pool is running `pg_sleep` (the transaction is in flight). */
  async function sleeping(): Promise<void> {
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    try {
      await expect
        .poll(async () => (await admin.query(`select count(*)::int as n from pg_stat_activity where application_name = 'faults' and query like '%pg_sleep%'`)).rows[0].n, {
          timeout: 10_000,
        })
        .toBe(1);
    } finally {
      await admin.end();
    }
  }

  it('answers 503 database.unavailable with Retry-After when its connection is terminated mid-transaction, and keeps running', async () => {
    const answer = app.inject({ method: 'POST', url: '/slow-write' });
    await sleeping();
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'faults'`);
    await admin.end();
    const response = await answer;
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('1');
    expect(response.json().error.code).toBe('database.unavailable');
    // The pool replaced the dead client by itself.
    expect((await app.inject({ method: 'GET', url: '/count' })).statusCode).toBe(200);
  });

  it('survives a server restart under an open transaction: 503 meanwhile, readiness down then up, the same pool serving again', async () => {
    const inFlight = app.inject({ method: 'POST', url: '/slow-write' });
    await sleeping();
    await cluster.stop();
    expect((await inFlight).json().error.code).toBe('database.unavailable');

    const whileDown = await app.inject({ method: 'GET', url: '/count' });
    expect(whileDown.statusCode).toBe(503);
    expect(whileDown.json().error.code).toBe('database.unavailable');
    const notReady = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json().checks.database.status).toBe('down');

    await cluster.start();
    await expect.poll(async () => (await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, { timeout: 10_000 }).toBe(200);
    const after = await app.inject({ method: 'GET', url: '/count' });
    expect(after.statusCode).toBe(200);
    // Both slow writes were rolled back: only the fixture's seed row is there.
    expect(after.json().n).toBe(1);
  });

  it('tells a lost connection from a refused statement', async () => {
    const refused = await database.db.execute(sql`select * from no_such_table`).catch((error: unknown) => error);
    expect(isDatabaseUnavailable(refused)).toBe(false);
    expect(isDatabaseUnavailable(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true);
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: new Error('Connection terminated unexpectedly') }))).toBe(true);
  });
});
