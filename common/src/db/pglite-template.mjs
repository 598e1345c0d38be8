/**
 * New embedded PGlite databases start from a copy of a freshly initialised one instead of running
 * initdb: PGlite's initdb boots a second WASM instance and takes ~2.2 s of CPU here, loading the
 * copy ~0.4 s (memory) to ~0.7 s (a folder). The first new database of a PGlite version is made
 * by initdb and dumped (`dumpDataDir`) into the template folder; later ones load it.
 *
 * The template is the bare cluster initdb leaves (no extension created, no table): the settings
 * (postgresql.conf) are written by PGlite at every start, extensions by each service's migrations.
 * It is keyed by PGlite's version (the data folder's format), written atomically (a temporary file
 * renamed, several processes may race and each writes a valid one) and named by its SHA-256, which
 * is checked before it is used: a damaged template is deleted and initdb runs instead.
 *
 * Plain JavaScript: the PGlite worker thread and the initdb child process import it too, and they
 * run without a TypeScript loader. Types in `pglite-template.d.mts`.
 */
import { Blob, Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** PGlite's version, from the package.json above its entry point (the package exports no package.json). */
const PGLITE_VERSION = (() => {
  for (let dir = dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite'))); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (manifest.name === '@electric-sql/pglite') return manifest.version;
    } catch {
      // Not here: one folder up.
    }
  }
  throw new Error('@electric-sql/pglite has no package.json above its entry point');
})();

/** `PGLITE_TEMPLATE_DIR`, else a folder in the system's temporary folder (shared by every checkout of this version). */
export function templateDir() {
  return process.env.PGLITE_TEMPLATE_DIR || join(tmpdir(), 'civildiy-pglite-templates');
}

const prefix = () => `pglite-${PGLITE_VERSION}-`;

/**
 * The template as PGlite's `loadDataDir` takes it, or `undefined` when there is none yet (or it
 * was damaged: then it is deleted).
 * @returns {Promise<Blob | undefined>}
 */
export async function readTemplate() {
  const dir = templateDir();
  let names;
  try {
    names = (await readdir(dir)).filter((name) => name.startsWith(prefix()) && name.endsWith('.tar'));
  } catch {
    return undefined;
  }
  for (const name of names) {
    const file = join(dir, name);
    let bytes;
    try {
      bytes = await readFile(file);
    } catch {
      continue;
    }
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (name === `${prefix()}${sha}.tar`) return new Blob([bytes]);
    await rm(file, { force: true });
  }
  return undefined;
}

/**
 * Dumps `db`, a database initdb has just made and nothing has used yet, as the template (when
 * none exists). Best effort: a template that cannot be written only means the next new database
 * runs initdb too.
 * @param {import('@electric-sql/pglite').PGlite} db
 */
export async function saveTemplate(db) {
  try {
    const dir = templateDir();
    // Not recursive: the folder's parent exists or there is no template (Node 20's recursive mkdir
    // can loop for good under a parent it may not write, such as /proc).
    await mkdir(dir).catch((error) => {
      if (error.code !== 'EEXIST') throw error;
    });
    const bytes = Buffer.from(await (await db.dumpDataDir('none')).arrayBuffer());
    const sha = createHash('sha256').update(bytes).digest('hex');
    const temporary = join(dir, `.${prefix()}${process.pid}-${Date.now()}.tmp`);
    await writeFile(temporary, bytes);
    await rename(temporary, join(dir, `${prefix()}${sha}.tar`));
  } catch {
    // See above: the template is an optimisation.
  }
}

/**
 * Creates a new database at `dataDir` (a folder without a cluster, or `memory://…`) from the
 * template, or with initdb (then saved as the template).
 * @param {typeof import('@electric-sql/pglite').PGlite} PGlite
 * @param {string} dataDir
 * @param {import('@electric-sql/pglite').PGliteOptions} options
 * @returns {Promise<import('@electric-sql/pglite').PGlite>}
 */
export async function createFromTemplate(PGlite, dataDir, options = {}) {
  const template = await readTemplate();
  if (template) return PGlite.create(dataDir, { ...options, loadDataDir: template });
  const db = await PGlite.create(dataDir, options);
  await saveTemplate(db);
  return db;
}
