/**
 * Why a request to the real model got no vectors: one class per reason, each with a stable `code`
 * (for logs and tests); `api.ts` answers each with its OpenAI-shaped status and code.
 */

/** The queue holds as many texts as it may: try again after `retryAfterSeconds` (429 `rate_limit_exceeded`). */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  readonly code = 'embeddings_model.queue_full';

  constructor(
    /** When the queue has probably room again, from the texts ahead and the model's recent pace. */
    readonly retryAfterSeconds: number,
    queued: number,
  ) {
    super(`The embedding model has ${queued} texts waiting, as many as it queues; try again in ${retryAfterSeconds} s`);
  }
}

/** A request was not answered within the batcher's `timeoutMs`, its wait for a load included (503 `timeout`). */
export class ModelTimeoutError extends Error {
  override readonly name = 'ModelTimeoutError';
  readonly code = 'embeddings_model.timeout';

  constructor(
    timeoutMs: number,
    /** When the queue has probably caught up. */
    readonly retryAfterSeconds: number,
  ) {
    super(`The embedding model did not answer within ${timeoutMs} ms (it is busy)`);
  }
}

/** The caller went away (its signal aborted) before its vectors were ready. */
export class RequestCancelledError extends Error {
  override readonly name = 'RequestCancelledError';
  readonly code = 'embeddings_model.cancelled';
}

/**
 * Loading the model failed (ONNX Runtime refused the file, its process died while loading), now or
 * at a load less than `retryAfterSeconds` ago: no load is tried again before then (503 `model_load_failed`).
 */
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
  readonly code = 'embeddings_model.load_failed';

  constructor(
    cause: Error,
    /** When the next load will be tried, at least 1. */
    readonly retryAfterSeconds: number,
  ) {
    super(`The embedding model could not be loaded (${cause.message}); the next load is tried in ${retryAfterSeconds} s`, { cause });
  }
}

/** The model's process went away under a request (it exited, or the provider is stopping) (503 `model_unavailable`). */
export class ModelStoppedError extends Error {
  override readonly name = 'ModelStoppedError';
  readonly code = 'embeddings_model.stopped';
}
