import { EventEmitter } from 'node:events';
import { ModelLoadError, ModelStoppedError } from './model-errors.ts';
import type { ModelMetrics } from './model-metrics.ts';

/** What {@link OnDemandModel} loads: anything that can be stopped. */
export interface Stoppable {
  /** Ends it and resolves once its resources are gone. */
  stop(): Promise<void>;
}

/** Where an {@link OnDemandModel} stands. */
export type OnDemandStatus = 'unloaded' | 'loading' | 'loaded' | 'unloading' | 'failed' | 'closed';

/** Why a model was unloaded: idle for the keep-alive, its process exited by itself, or the provider stopped. */
export type UnloadReason = 'idle' | 'exited' | 'stopped';

/** The events of an {@link OnDemandModel}. */
export interface OnDemandEvents {
  /** A load starts (a use found the model unloaded). */
  loading: [];
  loaded: [{ ms: number }];
  'load-failed': [{ error: Error; retryInMs: number }];
  /** `error`: why the model died, when it did (`exited`). */
  unloaded: [{ reason: UnloadReason; error?: Error }];
}

/** Options of {@link OnDemandModel}. */
export interface OnDemandOptions<M extends Stoppable> {
  /**
   * Loads the model. `signal` aborts when the owner closes (the load should stop and reject);
   * `onExit` is to be called when the loaded model dies by itself.
   */
  load: (signal: AbortSignal, onExit: (error: Error) => void) => Promise<M>;
  /** How long the model stays loaded after its last use, in ms; `-1`: for good. */
  keepAliveMs: number;
  /** The wait before a load is tried again after one failed, in ms, doubled after each further failure. */
  retryAfterFailureMs: number;
  /** The longest wait between failed loads, in ms. */
  maxRetryAfterFailureMs: number;
  metrics: Pick<ModelMetrics, 'loaded' | 'loads' | 'loadSeconds' | 'unloads'>;
}

type State<M> =
  | { kind: 'unloaded' }
  | { kind: 'loading'; model: Promise<M> }
  | { kind: 'loaded'; model: M }
  | { kind: 'unloading'; done: Promise<void> }
  | { kind: 'failed'; error: Error; retryAt: number }
  | { kind: 'closed' };

/**
 * A model loaded on its first use and unloaded once unused for `keepAliveMs`, as Ollama's
 * `keep_alive` does: uses during a load wait for that one load (there is never a second at the same
 * time), a use during an unload waits for it and loads again. A failed load fails the uses waiting
 * for it and every use for `retryAfterFailureMs` after it ({@link ModelLoadError}, with the seconds
 * to wait), doubling up to `maxRetryAfterFailureMs` while loads keep failing, so a broken runtime is
 * not reloaded in a tight loop; the next use after that tries again. A model that dies by itself is
 * unloaded, and the next use loads it again.
 */
export class OnDemandModel<M extends Stoppable> extends EventEmitter<OnDemandEvents> {
  private state: State<M> = { kind: 'unloaded' };
  private users = 0;
  private failures = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly closing = new AbortController();

  constructor(private readonly options: OnDemandOptions<M>) {
    super();
  }

  get status(): OnDemandStatus {
    return this.state.kind;
  }

  /** The model while it is loaded. */
  get current(): M | undefined {
    return this.state.kind === 'loaded' ? this.state.model : undefined;
  }

  /**
   * Runs `work` with the model, loading it first when needed; the keep-alive counts from the end of
   * the last use.
   * @throws ModelLoadError when the load failed, now or within the back-off of an earlier failure.
   * @throws ModelStoppedError once {@link close} was called.
   */
  async use<T>(work: (model: M) => Promise<T>): Promise<T> {
    this.users += 1;
    clearTimeout(this.idleTimer);
    try {
      return await work(await this.acquire());
    } finally {
      this.users -= 1;
      if (this.users === 0) this.scheduleUnload();
    }
  }

  /** Loads the model now unless it is loaded (or failed within its back-off); resolves once it is loaded. */
  async preload(): Promise<void> {
    await this.use(async () => undefined);
  }

  /** Ends a load under way, unloads the model and refuses every use from now on. */
  async close(): Promise<void> {
    this.closing.abort(new ModelStoppedError('The embeddings provider is stopping'));
    clearTimeout(this.idleTimer);
    for (;;) {
      const state = this.state;
      if (state.kind === 'loading') await state.model.catch(() => undefined);
      else if (state.kind === 'unloading') await state.done;
      else if (state.kind === 'loaded') await this.unload('stopped');
      else break;
    }
    clearTimeout(this.idleTimer);
    this.state = { kind: 'closed' };
  }

  private async acquire(): Promise<M> {
    for (;;) {
      const state = this.state;
      switch (state.kind) {
        case 'loaded':
        case 'loading':
          return state.model;
        case 'unloading':
          await state.done;
          break;
        case 'failed': {
          const waitMs = state.retryAt - performance.now();
          if (waitMs > 0) throw new ModelLoadError(state.error, Math.max(1, Math.ceil(waitMs / 1000)));
          this.load();
          break;
        }
        case 'unloaded':
          this.load();
          break;
        case 'closed':
          throw new ModelStoppedError('The embeddings provider is stopping');
      }
    }
  }

  private load(): void {
    if (this.closing.signal.aborted) {
      this.state = { kind: 'closed' };
      return;
    }
    const started = performance.now();
    const model = this.options.load(this.closing.signal, (error) => this.exited(error)).then(
      (loaded) => {
        const ms = performance.now() - started;
        this.failures = 0;
        this.state = { kind: 'loaded', model: loaded };
        this.options.metrics.loaded.set(1);
        this.options.metrics.loads.inc({ outcome: 'succeeded' });
        this.options.metrics.loadSeconds.observe(ms / 1000);
        this.emit('loaded', { ms });
        // Loaded for nobody (its uses left, or a preload): the keep-alive starts now. Closed
        // meanwhile: close() waits for this load and unloads it.
        if (this.users === 0) this.scheduleUnload();
        return loaded;
      },
      (error: Error) => {
        if (this.closing.signal.aborted) {
          this.state = { kind: 'closed' };
          throw new ModelStoppedError('The embeddings provider is stopping', { cause: error });
        }
        const retryInMs = Math.min(this.options.maxRetryAfterFailureMs, this.options.retryAfterFailureMs * 2 ** this.failures);
        this.failures += 1;
        this.state = { kind: 'failed', error, retryAt: performance.now() + retryInMs };
        this.options.metrics.loads.inc({ outcome: 'failed' });
        this.emit('load-failed', { error, retryInMs });
        throw new ModelLoadError(error, Math.max(1, Math.ceil(retryInMs / 1000)));
      },
    );
    // The uses waiting get the failure; when none waits, it is not an unhandled rejection.
    model.catch(() => undefined);
    this.state = { kind: 'loading', model };
    this.emit('loading');
  }

  /** The loaded model died by itself (its uses under way failed): the next use loads it again. */
  private exited(error: Error): void {
    if (this.state.kind !== 'loaded') return;
    this.state = { kind: 'unloaded' };
    clearTimeout(this.idleTimer);
    this.options.metrics.loaded.set(0);
    this.options.metrics.unloads.inc({ reason: 'exited' });
    this.emit('unloaded', { reason: 'exited', error });
  }

  private scheduleUnload(): void {
    clearTimeout(this.idleTimer);
    if (this.state.kind !== 'loaded' || this.options.keepAliveMs < 0) return;
    this.idleTimer = setTimeout(() => void this.unload('idle'), this.options.keepAliveMs);
    this.idleTimer.unref();
  }

  private async unload(reason: UnloadReason): Promise<void> {
    const state = this.state;
    if (state.kind !== 'loaded' || (reason === 'idle' && this.users > 0)) return;
    const done = state.model.stop().then(() => {
      this.state = { kind: 'unloaded' };
      this.options.metrics.loaded.set(0);
      this.options.metrics.unloads.inc({ reason });
      this.emit('unloaded', { reason });
    });
    this.state = { kind: 'unloading', done };
    await done;
  }
}
