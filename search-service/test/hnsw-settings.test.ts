import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@civildiy/common/testing';
import { withHnswSettings } from '../src/semantic-search.ts';
import { openSearchDatabase, searchServer, serverSkipNote, type SearchDatabase } from './search-service-under-test.ts';

describe('withHnswSettings', () => {
  it('adds the HNSW settings to the startup options of a server URL, after the options it has', () => {
    const url = new URL(withHnswSettings('postgres://search:p%40ss@db.example:5432/search?options=-c%20statement_timeout%3D5000&sslmode=disable', 64));
    expect(url.searchParams.get('options')).toBe('-c statement_timeout=5000 -c hnsw.ef_search=64 -c hnsw.iterative_scan=strict_order');
    expect({ user: url.username, password: decodeURIComponent(url.password), host: url.host, database: url.pathname, sslmode: url.searchParams.get('sslmode') }).toEqual({
      user: 'search',
      password: 'p@ss',
      host: 'db.example:5432',
      database: '/search',
      sslmode: 'disable',
    });
  });
});

// The server target needs pgvector on the server: without it the suite skips, saying why (it fails under CI=true).
const server = await searchServer();

describe.skipIf(server.status === 'skip')(`a search database on a Postgres server opened with the settings ${serverSkipNote(server)}`, () => {
  let scratch: TestDatabase;
  let database: SearchDatabase;

  beforeAll(async () => {
    if (server.status !== 'ready') throw new Error(server.reason);
    scratch = await createTestDatabase(server.url);
    database = await openSearchDatabase('Postgres server with pgvector', withHnswSettings(scratch.url, 77));
  });

  afterAll(async () => {
    await database?.close();
    await scratch?.drop();
  });

  it('has them on every pooled connection once pgvector is loaded, without a statement of its own', async () => {
    const settings = await Promise.all(
      Array.from({ length: 4 }, () =>
        database.db.transaction(async (tx) => {
          await tx.execute(sql`select '[1,0]'::vector <=> '[0,1]'::vector`);
          const result = await tx.execute(sql`select current_setting('hnsw.ef_search') as ef, current_setting('hnsw.iterative_scan') as scan, pg_backend_pid() as pid`);
          return result.rows[0] as { ef: string; scan: string; pid: number };
        }),
      ),
    );
    expect(new Set(settings.map((row) => row.pid)).size).toBe(4);
    expect(settings.map(({ ef, scan }) => ({ ef, scan }))).toEqual(Array.from({ length: 4 }, () => ({ ef: '77', scan: 'strict_order' })));
  });
});
