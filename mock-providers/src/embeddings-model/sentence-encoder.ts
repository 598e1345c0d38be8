import { Worker } from 'node:worker_threads';

/** What the encoder thread is started with. */
interface EncoderWorkerData {
  onnxPath: string;
  threads: number;
}

/** A request to the thread: sequences of token ids laid end to end, and their lengths. Id 0 is the start-up reply. */
interface EncodeRequest {
  id: number;
  ids: Int32Array;
  lengths: Int32Array;
}

/** The thread's replies: `dimensions` for id 0, `vectors` (end to end) and the run's `ms` otherwise. */
type EncodeReply = { id: number; ok: true; dimensions?: number; vectors?: Float64Array; ms?: number } | { id: number; ok: false; error: string };

/** Options of {@link SentenceEncoder.open}. */
export interface SentenceEncoderOptions {
  /** ONNX Runtime's intra-op threads. Default 1 (the local stack shares two cores among a dozen processes). */
  threads?: number;
  /** Called when the thread dies after it started (the encoder is then unusable). */
  onExit?: (error: Error) => void;
}

/** The vectors of one {@link SentenceEncoder.encode} call. */
export interface EncodedBatch {
  /** One unit vector per sequence, in order. */
  vectors: Float64Array[];
  /** Time the thread spent running the model, in ms. */
  ms: number;
}

/**
 * The sentence-embedding model on a worker thread of its own (`encoder-thread.mjs`), so a run of
 * the model never stalls the process's HTTP handling (the payments and messaging mocks share it).
 * Calls are answered in order; the thread runs one call's sequences one after the other.
 */
export class SentenceEncoder {
  private readonly pending = new Map<number, { resolve: (batch: EncodedBatch) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private failure: Error | undefined;
  private closing = false;

  private constructor(
    private readonly worker: Worker,
    /** The length of every vector (384 for all-MiniLM-L6-v2). */
    readonly dimensions: number,
    onExit: (error: Error) => void,
  ) {
    worker.on('message', (reply: EncodeReply) => this.settle(reply));
    worker.on('error', (error) => this.fail(new Error(`the model thread failed: ${error.message}`, { cause: error }), onExit));
    worker.on('exit', (code) => this.fail(new Error(`the model thread exited (code ${code})`), this.closing ? () => undefined : onExit));
  }

  /** Starts the thread, loads the model from `onnxPath` and runs it once; rejects with ONNX Runtime's reason when it cannot. */
  static async open(onnxPath: string, options: SentenceEncoderOptions = {}): Promise<SentenceEncoder> {
    const workerData: EncoderWorkerData = { onnxPath, threads: options.threads ?? 1 };
    const worker = new Worker(new URL('./encoder-thread.mjs', import.meta.url), { workerData });
    const listeners: { message?: (reply: EncodeReply) => void; error?: (error: Error) => void; exit?: (code: number) => void } = {};
    try {
      const dimensions = await new Promise<number>((resolve, reject) => {
        listeners.message = (reply) => (reply.ok ? resolve(reply.dimensions!) : reject(new Error(reply.error)));
        listeners.error = reject;
        listeners.exit = (code) => reject(new Error(`the model thread exited (code ${code}) while loading ${onnxPath}`));
        worker.once('message', listeners.message).once('error', listeners.error).once('exit', listeners.exit);
      });
      // Only the start-up listeners: removeAllListeners() would also drop the worker's own.
      worker.off('message', listeners.message!).off('error', listeners.error!).off('exit', listeners.exit!);
      return new SentenceEncoder(worker, dimensions, options.onExit ?? (() => undefined));
    } catch (error) {
      await worker.terminate();
      throw error;
    }
  }

  /** The unit vectors of token-id sequences (each `[CLS] … [SEP]`, none empty), in order. */
  encode(sequences: readonly number[][]): Promise<EncodedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    const lengths = Int32Array.from(sequences, (sequence) => sequence.length);
    const ids = new Int32Array(lengths.reduce((sum, length) => sum + length, 0));
    let offset = 0;
    for (const sequence of sequences) {
      ids.set(sequence, offset);
      offset += sequence.length;
    }
    const id = this.nextId++;
    const request: EncodeRequest = { id, ids, lengths };
    return new Promise<EncodedBatch>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(request, [ids.buffer, lengths.buffer]);
    });
  }

  /** Stops the thread; calls still pending reject. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.worker.terminate();
  }

  private settle(reply: EncodeReply): void {
    const waiting = this.pending.get(reply.id);
    if (!waiting) return;
    this.pending.delete(reply.id);
    if (!reply.ok) {
      waiting.reject(new Error(`the model failed: ${reply.error}`));
      return;
    }
    const flat = reply.vectors!;
    const count = flat.length / this.dimensions;
    const vectors = Array.from({ length: count }, (_, i) => flat.subarray(i * this.dimensions, (i + 1) * this.dimensions));
    waiting.resolve({ vectors, ms: reply.ms ?? 0 });
  }

  private fail(error: Error, notify: (error: Error) => void): void {
    if (this.failure) return;
    this.failure = error;
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
    notify(error);
  }
}
