import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ModelStoppedError } from './model-errors.ts';
import type { ModelFiles } from './model-files.ts';

/** A request to the process: texts to embed. */
interface EncodeRequest {
  id: number;
  texts: readonly string[];
}

/** What the process sends: once `ready` (or `failed`) after loading, then one answer per request. */
type ProcessMessage =
  | { kind: 'ready'; dimensions: number }
  | { kind: 'failed'; error: string }
  | { kind: 'vectors'; id: number; vectors: Float64Array; tokens: Int32Array; truncated: number; ms: number }
  | { kind: 'error'; id: number; error: string };

/** The vectors of one {@link ModelProcess.encode} call. */
export interface EncodedBatch {
  /** One unit vector per text, in order. */
  vectors: Float64Array[];
  /** Each text's tokens (`[CLS]` and `[SEP]` included, after truncation), in order. */
  tokens: number[];
  /** Texts cut to the model's 256 tokens. */
  truncated: number;
  /** Time the process spent on the texts, in ms. */
  ms: number;
}

/** Options of {@link ModelProcess.start}. */
export interface ModelProcessOptions {
  /** ONNX Runtime's intra-op threads. */
  threads: number;
  /** Ends a start under way: the process is killed, and `start` rejects once it is gone. */
  signal?: AbortSignal;
  /** Called when the process exits while nobody stopped it (the model is then unusable). */
  onExit: (error: Error) => void;
}

const SCRIPT = fileURLToPath(new URL('./model-process-child.mjs', import.meta.url));

/**
 * Node's options for the model's process. Its JavaScript allocates little that lives (texts, token
 * ids): a young generation of 2 × 1 MB instead of 2 × 16 MB is ~13 MB less resident while the model
 * is loaded, at the same speed (500 post-sized texts: 16.4 s against 18.1 s, a shared machine).
 */
const NODE_ARGS = ['--max-semi-space-size=1'];

/**
 * glibc's settings for the model's process, unless its environment sets them. A fixed trim threshold
 * (1 MB) turns off glibc's adaptive thresholds, which after ONNX Runtime's start-up (the model's file
 * read and parsed into large buffers, then freed) kept those buffers' memory: ~13 MB less anonymous
 * memory once loaded (54 against 67 MB), at the same speed only because ONNX Runtime's arena serves
 * the runs (`model-process-child.mjs`): without the arena, every run's buffers would be mmap'ed and
 * unmapped, and the model 4× slower (7.5 against 32 texts/s).
 */
const MALLOC_ENV = { MALLOC_TRIM_THRESHOLD_: String(1024 * 1024) };

/** How long a stopped process may take to exit before it is killed. */
const STOP_GRACE_MS = 2_000;

/** The last characters of the process's standard error, for the message when it fails. */
const STDERR_KEPT = 2_000;

/**
 * The sentence-embedding model in a process of its own (`model-process-child.mjs`): started on demand,
 * stopped when idle, so that its memory (~90 MB while it works) goes back to the system with the
 * process. Texts go over the IPC channel (structured clone: vectors come back as `Float64Array`s);
 * calls are answered in order, one batch at a time. The process exits when its parent does.
 */
export class ModelProcess {
  private readonly pending = new Map<number, { resolve: (batch: EncodedBatch) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private failure: Error | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
    private readonly stderr: () => string,
    /** The length of every vector (384 for all-MiniLM-L6-v2). */
    readonly dimensions: number,
    onExit: (error: Error) => void,
  ) {
    child.on('message', (message: ProcessMessage) => this.settle(message));
    // A failed kill or send (the process is going away): its exit, or the send's callback, says the rest.
    child.on('error', () => undefined);
    child.once('exit', (code, signal) => {
      const error = new ModelStoppedError(`The embedding model's process exited (${signal ?? `code ${code}`})${this.stderrSuffix()}`);
      this.fail(error);
      if (!this.stopping) onExit(error);
    });
  }

  /** The process id (for logs, and tests that look for the process). */
  get pid(): number {
    return this.child.pid!;
  }

  /**
   * Starts the process, which loads the tokenizer and the model (checked files: see
   * `locateModelFiles`) and runs it once.
   * @throws Error with ONNX Runtime's reason, or the process's exit, when it cannot load.
   */
  static async start(files: Pick<ModelFiles, 'onnx' | 'tokenizer'>, options: ModelProcessOptions): Promise<ModelProcess> {
    options.signal?.throwIfAborted();
    const child = fork(SCRIPT, [files.onnx, files.tokenizer, String(options.threads)], {
      execArgv: NODE_ARGS,
      // The parent's NODE_OPTIONS (a TypeScript loader, a debugger) are not the model's.
      env: { ...MALLOC_ENV, ...process.env, NODE_OPTIONS: '' },
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    // A process that could not be started has no exit: its spawn error ends it too.
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => {
        if (child.pid === undefined) resolve();
      });
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEPT);
    });
    const listeners: {
      message?: (message: ProcessMessage) => void;
      exit?: (code: number | null, signal: NodeJS.Signals | null) => void;
      error?: (error: Error) => void;
      abort?: () => void;
    } = {};
    try {
      const dimensions = await new Promise<number>((resolve, reject) => {
        listeners.message = (message) => {
          if (message.kind === 'ready') resolve(message.dimensions);
          else if (message.kind === 'failed') reject(new Error(message.error));
        };
        listeners.exit = (code, signal) => reject(new Error(`the model's process exited (${signal ?? `code ${code}`}) while loading${stderr ? `: ${stderr.trim()}` : ''}`));
        listeners.error = (error) => reject(new Error(`the model's process could not be started: ${error.message}`, { cause: error }));
        listeners.abort = () => reject(options.signal!.reason as Error);
        child.on('message', listeners.message).once('exit', listeners.exit).once('error', listeners.error);
        options.signal?.addEventListener('abort', listeners.abort, { once: true });
      });
      return new ModelProcess(child, exited, () => stderr, dimensions, options.onExit);
    } catch (error) {
      child.kill('SIGKILL');
      await exited;
      throw error;
    } finally {
      child.off('message', listeners.message!).off('exit', listeners.exit!).off('error', listeners.error!);
      options.signal?.removeEventListener('abort', listeners.abort!);
    }
  }

  /** The unit vectors of `texts` (none empty), in order. */
  encode(texts: readonly string[]): Promise<EncodedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const request: EncodeRequest = { id, texts };
    return new Promise<EncodedBatch>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send(request, (error) => {
        if (error) this.fail(new ModelStoppedError(`The embedding model's process took no request: ${error.message}`));
      });
    });
  }

  /** Ends the process (killed after 2 s), and resolves once it is gone; calls still pending reject. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.child.connected) this.child.disconnect();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    })();
    return this.stopping;
  }

  private settle(message: ProcessMessage): void {
    if (message.kind !== 'vectors' && message.kind !== 'error') return;
    const waiting = this.pending.get(message.id);
    if (!waiting) return;
    this.pending.delete(message.id);
    if (message.kind === 'error') {
      waiting.reject(new Error(`the model failed: ${message.error}`));
      return;
    }
    const { vectors: flat, tokens, truncated, ms } = message;
    const vectors = Array.from(tokens, (_, i) => flat.subarray(i * this.dimensions, (i + 1) * this.dimensions));
    waiting.resolve({ vectors, tokens: Array.from(tokens), truncated, ms });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiting of this.pending.values()) waiting.reject(this.failure);
    this.pending.clear();
  }

  private stderrSuffix(): string {
    const text = this.stderr().trim();
    return text ? `: ${text}` : '';
  }
}
