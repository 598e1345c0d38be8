import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFromTemplate, readTemplate, templateDir } from '../src/db/pglite-template.mjs';

describe('new PGlite databases from a template', () => {
  let dir: string;
  const previous = process.env.PGLITE_TEMPLATE_DIR;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'civildiy-pglite-template-test-'));
    process.env.PGLITE_TEMPLATE_DIR = dir;
  });
  afterAll(async () => {
    if (previous === undefined) delete process.env.PGLITE_TEMPLATE_DIR;
    else process.env.PGLITE_TEMPLATE_DIR = previous;
    await rm(dir, { recursive: true, force: true });
  });

  const templates = async () => (await readdir(dir)).filter((name) => name.endsWith('.tar'));

  it('saves the first new database as the template, named by its SHA-256, and later ones start from it, each a database of its own', async () => {
    expect(templateDir()).toBe(dir);
    await expect(readTemplate()).resolves.toBeUndefined();

    const first = await createFromTemplate(PGlite, 'memory://first');
    expect(await templates()).toEqual([expect.stringMatching(/^pglite-\d+\.\d+\.\d+-[0-9a-f]{64}\.tar$/)]);
    await first.exec('create table only_in_first (id int)');

    await expect(readTemplate()).resolves.toBeInstanceOf(Blob);
    const second = await createFromTemplate(PGlite, 'memory://second');
    await second.exec('create table only_in_second (id int); insert into only_in_second values (1)');
    const tables = async (db: PGlite) => (await db.query<{ name: string }>(`select tablename as name from pg_tables where tablename like 'only_in_%'`)).rows.map((row) => row.name);
    expect(await tables(first)).toEqual(['only_in_first']);
    expect(await tables(second)).toEqual(['only_in_second']);
    expect((await second.query<{ n: number }>('select count(*)::int as n from only_in_second')).rows).toEqual([{ n: 1 }]);
    expect(await templates()).toHaveLength(1);
    await Promise.all([first.close(), second.close()]);
  });

  it('makes a folder from the template that opens again with its data', async () => {
    const folder = path.join(dir, 'folder-db');
    const db = await createFromTemplate(PGlite, folder);
    await db.exec('create table kept (v text); insert into kept values ($$still here$$)');
    await db.close();
    const reopened = await PGlite.create(folder);
    expect((await reopened.query('select v from kept')).rows).toEqual([{ v: 'still here' }]);
    await reopened.close();
  });

  it('deletes a damaged template and runs initdb instead, saving a good one', async () => {
    const [name] = await templates();
    const file = path.join(dir, name!);
    const bytes = await readFile(file);
    const middle = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0xff, middle);
    await writeFile(file, bytes);

    await expect(readTemplate()).resolves.toBeUndefined();
    expect(await templates()).toEqual([]);
    const db = await createFromTemplate(PGlite, 'memory://after-damage');
    expect((await db.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await db.close();
    expect(await templates()).toHaveLength(1);
  });
});
