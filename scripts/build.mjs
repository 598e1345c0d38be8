/**
 * `npm run build`: compiles every workspace's `src/` (and the launcher in `scripts/`) to JavaScript
 * in `dist/`, so `npm start` and the images run plain `node` with no TypeScript loader.
 *
 * Each file is transpiled on its own (`ts.transpileModule`, which `isolatedModules` and
 * `verbatimModuleSyntax` make exact): relative `./x.ts` imports become `./x.js`, type-only imports
 * disappear, a source map sits next to each file. Type checking is `npm run typecheck`'s job, not
 * this one's. Files under `src/` that are not TypeScript (migrations, Lua scripts, a worker's .mjs)
 * are copied as they are, since the code finds them next to itself (`new URL('./db/migrations',
 * import.meta.url)`).
 *
 * Incremental: a file is written only when its source is newer than its output, and an output whose
 * source is gone is deleted, so `npm start` can run this every time (a no-op build takes ~0.1 s).
 *
 * Web pages (`VITE_APPS`: the dashboard's page) are not transpiled file by file: they are bundled
 * by Vite, whole, when any of their files is newer than the built `index.html`. Vite is loaded only
 * then, so a no-op build stays fast.
 *
 * Plain JavaScript on purpose: it runs before anything is compiled.
 */
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** TypeScript, loaded only when a file needs compiling (loading it takes ~0.4 s; a no-op build does not). */
let typescript;
async function loadTypescript() {
  typescript ??= (await import('typescript')).default;
  return typescript;
}

/** `useDefineForClassFields` follows the target (ES2022+): the same class semantics as tsx and vitest. */
function compilerOptions(ts) {
  return {
    target: ts.ScriptTarget.ES2023,
    module: ts.ModuleKind.ESNext,
    verbatimModuleSyntax: true,
    rewriteRelativeImportExtensions: true,
    sourceMap: true,
  };
}

/**
 * Workspaces that are web pages built by Vite (their own `vite.config.ts`), with the folder it
 * builds into. That folder sits inside another workspace's `dist/`, whose clean-up leaves it alone.
 */
const VITE_APPS = [{ workspace: 'dashboard/web', outDir: 'dashboard/dist/web' }];

/** @typedef {{ from: string, to: string, skip?: (relative: string) => boolean, keep?: (relative: string) => boolean }} BuildRoot */

/** Whether `relative` (to `to`) lies in a Vite app's output folder. */
function inViteOutput(to, relative) {
  const file = path.join(to, relative);
  return VITE_APPS.some(({ outDir }) => {
    const output = path.join(root, outDir);
    return file === output || file.startsWith(output + path.sep);
  });
}

/** @returns {Promise<BuildRoot[]>} every workspace's src → dist, and the launcher's scripts → scripts/dist */
async function buildRoots() {
  const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));
  const viteApps = new Set(VITE_APPS.map(({ workspace }) => workspace));
  /** @type {BuildRoot[]} */
  const roots = manifest.workspaces
    .filter((workspace) => !viteApps.has(workspace))
    .map((workspace) => {
      const to = path.join(root, workspace, 'dist');
      return { from: path.join(root, workspace, 'src'), to, keep: (relative) => inViteOutput(to, relative) };
    });
  // The launcher only: the other scripts are development tools that run through tsx.
  roots.push({ from: path.join(root, 'scripts'), to: path.join(root, 'scripts', 'dist'), skip: (relative) => !(relative === 'start.ts' || relative === 'launcher' || relative.startsWith('launcher/')) });
  return roots;
}

/** Files under `dir`, relative to it, skipping what `skip` names (tested on relative paths). */
async function listFiles(dir, skip = () => false, prefix = '') {
  let entries;
  try {
    entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
  const files = [];
  for (const entry of entries) {
    const relative = path.join(prefix, entry.name);
    if (skip(relative)) continue;
    if (entry.isDirectory()) files.push(...(await listFiles(dir, skip, relative)));
    else if (entry.isFile()) files.push(relative);
  }
  return files;
}

async function mtimeMs(file) {
  try {
    return (await stat(file)).mtimeMs;
  } catch (error) {
    if (error.code === 'ENOENT') return -1;
    throw error;
  }
}

/** The output files of one source file. */
function outputsOf(relative) {
  if (relative.endsWith('.d.ts')) return [];
  if (relative.endsWith('.ts')) {
    const js = relative.slice(0, -'.ts'.length) + '.js';
    return [js, `${js}.map`];
  }
  return [relative];
}

/**
 * Builds one root.
 * @returns {Promise<{ compiled: number, copied: number, removed: number, errors: string[] }>}
 */
async function buildRoot({ from, to, skip, keep = () => false }) {
  const sources = await listFiles(from, skip);
  const result = { compiled: 0, copied: 0, removed: 0, errors: [] };
  const expected = new Set();
  for (const relative of sources) {
    const outputs = outputsOf(relative);
    for (const output of outputs) expected.add(output);
    if (outputs.length === 0) continue;
    const source = path.join(from, relative);
    const target = path.join(to, outputs[0]);
    const sourceTime = await mtimeMs(source);
    if ((await mtimeMs(target)) >= sourceTime) continue;
    await mkdir(path.dirname(target), { recursive: true });
    if (!relative.endsWith('.ts')) {
      await copyFile(source, target);
      result.copied++;
      continue;
    }
    const ts = await loadTypescript();
    const output = ts.transpileModule(await readFile(source, 'utf8'), {
      compilerOptions: compilerOptions(ts),
      fileName: source,
      reportDiagnostics: true,
    });
    for (const diagnostic of output.diagnostics ?? []) {
      result.errors.push(`${path.relative(root, source)}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`);
    }
    // The map names the source relative to the output, so stack traces point at the .ts file.
    const map = JSON.parse(output.sourceMapText);
    map.sources = [path.relative(path.dirname(target), source)];
    await writeFile(`${target}.map`, JSON.stringify(map));
    await writeFile(target, output.outputText);
    result.compiled++;
  }
  for (const relative of await listFiles(to, keep)) {
    if (expected.has(relative)) continue;
    await rm(path.join(to, relative));
    result.removed++;
  }
  return result;
}

/** The newest modification time of the files and folders under `dir` (a removed file changes its folder's). */
async function newestMtimeMs(dir, skip) {
  let newest = await mtimeMs(dir);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (skip(entry.name)) continue;
    const file = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? await newestMtimeMs(file, skip) : await mtimeMs(file));
  }
  return newest;
}

/**
 * Bundles one Vite app when a file of its workspace is newer than its built `index.html`. A
 * workspace without `index.html` (an image that did not copy the page's sources) is left alone.
 * @returns {Promise<boolean>} whether it was built
 */
async function buildViteApp({ workspace, outDir }, { quiet }) {
  const appRoot = path.join(root, workspace);
  if ((await mtimeMs(path.join(appRoot, 'index.html'))) < 0) return false;
  const newestSource = await newestMtimeMs(appRoot, (name) => name === 'node_modules' || name === 'dist' || name === 'test');
  if ((await mtimeMs(path.join(root, outDir, 'index.html'))) >= newestSource) return false;
  const vite = await import('vite');
  await vite.build({ configFile: path.join(appRoot, 'vite.config.ts'), root: appRoot, logLevel: quiet ? 'warn' : 'info' });
  return true;
}

/**
 * Builds every root and Vite app; resolves to the totals. Rejects with every transpile error
 * (syntax errors: type errors are `npm run typecheck`'s) and any failed bundle.
 * @param {{ quiet?: boolean }} [options] quiet: Vite says only warnings and errors
 */
export async function build({ quiet = false } = {}) {
  const totals = { compiled: 0, copied: 0, removed: 0, bundled: 0 };
  const errors = [];
  for (const buildRoot_ of await buildRoots()) {
    const result = await buildRoot(buildRoot_);
    totals.compiled += result.compiled;
    totals.copied += result.copied;
    totals.removed += result.removed;
    errors.push(...result.errors);
  }
  for (const app of VITE_APPS) {
    try {
      if (await buildViteApp(app, { quiet })) totals.bundled++;
    } catch (error) {
      errors.push(`${app.workspace}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (errors.length > 0) throw new Error(`The build failed:\n${errors.join('\n')}`);
  return totals;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  try {
    const quiet = process.argv.includes('--quiet');
    const totals = await build({ quiet });
    const changed = totals.compiled + totals.copied + totals.removed + totals.bundled;
    if (changed > 0 || !quiet) {
      const bundled = totals.bundled > 0 ? `, ${totals.bundled} web app${totals.bundled === 1 ? '' : 's'} bundled` : '';
      console.log(`build: ${totals.compiled} compiled, ${totals.copied} copied, ${totals.removed} removed${bundled} in ${Math.round(performance.now() - started)} ms`);
    }
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  }
}
