/**
 * Creates an embedded PGlite database folder (initdb) and exits: run by `openDatabase` in a child
 * process of its own, because PGlite's WASM memory grows with initdb's work and never shrinks, and
 * what a process once held stays partly resident even after the instance is gone. Plain JavaScript
 * so that it runs with no TypeScript loader. The folder is a copy of the template when there is one
 * (`pglite-template.mjs`). Usage: `node pglite-initdb.mjs <dataDir>`.
 */
import { PGlite } from '@electric-sql/pglite';
import { createFromTemplate } from './pglite-template.mjs';

const dataDir = process.argv[2];
if (!dataDir) {
  console.error('usage: node pglite-initdb.mjs <dataDir>');
  process.exit(2);
}
const db = await createFromTemplate(PGlite, dataDir);
await db.close();
