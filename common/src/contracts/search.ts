import { z } from 'zod';
import { defineTask } from '../tasks/define.ts';

/** One text to embed, with the caller's id for it (search-service: the buffer row id). */
export const TextToEmbed = z.object({
  id: z.string().min(1).max(200),
  text: z.string().min(1).max(32_000),
});

/** Input of `search.embed`: one batch of texts. */
export const EmbedBatch = z.object({
  /** The batch (UUIDv5 of what it holds, so a re-sent batch is the same job). */
  batchId: z.uuid(),
  texts: z.array(TextToEmbed).min(1).max(256),
});
export type EmbedBatch = z.infer<typeof EmbedBatch>;

/** Output of `search.embed`: one vector per input text, in input order, all of one dimension. */
export const EmbeddedBatch = z.object({
  batchId: z.uuid(),
  /** The model the provider says it used (a reindex compares it). */
  model: z.string().min(1),
  dimensions: z.number().int().positive(),
  vectors: z.array(z.object({ id: z.string(), embedding: z.array(z.number()) })),
});
export type EmbeddedBatch = z.infer<typeof EmbeddedBatch>;

/**
 * Embeds a batch of texts through the embeddings provider. Runs on the dedicated worker (queue
 * `embeddings`); many attempts with backoff, because an open circuit to the provider makes attempts
 * wait and retry rather than fail.
 */
export const embedBatch = defineTask({
  name: 'search.embed',
  queue: 'embeddings',
  input: EmbedBatch,
  output: EmbeddedBatch,
  retry: { attempts: 8, backoff: { type: 'exponential', delayMs: 1_000 } },
  timeoutMs: 60_000,
  description: 'Embeds a batch of post texts through the embeddings provider (OpenAI-compatible).',
});
