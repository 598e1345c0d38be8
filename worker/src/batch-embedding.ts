import type { Logger } from '@civildiy/common';
import type { EmbedBatch, EmbeddedBatch } from '@civildiy/common/contracts';

/** The provider call batch embedding needs (the common `EmbeddingsClient` has it). */
export interface TextEmbedder {
  /**
   * One vector per text, in input order, all of `dimensions` (checked before it returns).
   * Throws `ProviderUnavailableError` (retryable) or `PermanentError` (dead letter).
   */
  embed(texts: string[], options?: { signal?: AbortSignal }): Promise<{ model: string; dimensions: number; vectors: number[][] }>;
}

/**
 * Embeds one batch of texts in a single provider call and pairs each vector with its text's id, in
 * input order. Provider errors propagate unchanged: unavailability (including an open circuit) is
 * retried by the task runtime with the task's backoff, so attempts meeting an open circuit are
 * spread out rather than spent at once; a rejected request or an answer of the wrong count or
 * dimension is permanent and dead-letters the batch.
 */
export async function embedTextBatch(deps: { embeddings: TextEmbedder; logger: Logger }, batch: EmbedBatch, signal?: AbortSignal): Promise<EmbeddedBatch> {
  const started = performance.now();
  const result = await deps.embeddings.embed(
    batch.texts.map((text) => text.text),
    signal ? { signal } : {},
  );
  deps.logger.info(
    { batchId: batch.batchId, texts: batch.texts.length, model: result.model, dimensions: result.dimensions, ms: Math.round(performance.now() - started) },
    'batch embedded',
  );
  return {
    batchId: batch.batchId,
    model: result.model,
    dimensions: result.dimensions,
    vectors: batch.texts.map((text, i) => ({ id: text.id, embedding: result.vectors[i]! })),
  };
}
