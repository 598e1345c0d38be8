import { z } from 'zod';
import { HashEmbedder } from './text-embedding.ts';

/** The model named in answers when a request names none. */
export const DEFAULT_EMBEDDINGS_MODEL = 'civildiy-hash-embed-1';

/** OpenAI's limits, which the mock keeps so a client that works here works there. */
export const EMBEDDINGS_LIMITS = Object.freeze({
  /** Texts in one request. */
  maxInputs: 2048,
  /** Tokens in one text (estimated as characters / 4, see {@link estimateTokens}). */
  maxTokensPerInput: 8192,
  /** The largest `dimensions` a request may ask for. */
  maxDimensions: 4096,
});

/** The mock's token count: about four characters per token, as for English with OpenAI's tokenisers. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

const InputText = z.string();

/** Body of `POST /v1/embeddings` (OpenAI's shape; other fields, such as `user`, are accepted and ignored). */
export const EmbeddingsRequest = z
  .looseObject({
    model: z.string().min(1).max(256).optional().describe(`echoed in the answer; seeds the hashing. Default ${DEFAULT_EMBEDDINGS_MODEL}`),
    input: z
      .union([InputText, z.array(InputText)], { error: 'expected a string or an array of strings' })
      .describe(`one text or up to ${EMBEDDINGS_LIMITS.maxInputs} texts, none empty, each at most ${EMBEDDINGS_LIMITS.maxTokensPerInput} tokens`),
    dimensions: z
      .number()
      .int()
      .min(1)
      .max(EMBEDDINGS_LIMITS.maxDimensions)
      .optional()
      .describe('the vector length; default the provider\'s (MOCK_EMBEDDINGS_DIMENSIONS)'),
    encoding_format: z.enum(['float', 'base64']).default('float').describe('base64: little-endian float32 bytes'),
  })
  .superRefine((request, ctx) => {
    const texts = typeof request.input === 'string' ? [request.input] : request.input;
    if (texts.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['input'], message: 'must not be empty', params: { code: 'invalid_value' } });
    } else if (texts.length > EMBEDDINGS_LIMITS.maxInputs) {
      ctx.addIssue({ code: 'custom', path: ['input'], message: `has ${texts.length} items, at most ${EMBEDDINGS_LIMITS.maxInputs} are allowed`, params: { code: 'invalid_value' } });
    }
    texts.forEach((text, index) => {
      const path = typeof request.input === 'string' ? ['input'] : ['input', index];
      if (text.length === 0) {
        ctx.addIssue({ code: 'custom', path, message: 'must not be an empty string', params: { code: 'invalid_value' } });
      } else if (estimateTokens(text) > EMBEDDINGS_LIMITS.maxTokensPerInput) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: `is ${estimateTokens(text)} tokens long; the model's maximum context length is ${EMBEDDINGS_LIMITS.maxTokensPerInput} tokens`,
          params: { code: 'context_length_exceeded' },
        });
      }
    });
  });
export type EmbeddingsRequest = z.output<typeof EmbeddingsRequest>;

/** The answer of `POST /v1/embeddings` (OpenAI's shape). */
export const EmbeddingsResponse = z.object({
  object: z.literal('list'),
  data: z.array(
    z.object({
      object: z.literal('embedding'),
      index: z.number().int(),
      embedding: z.union([z.array(z.number()), z.string()]).describe('numbers, or a base64 string with encoding_format base64'),
    }),
  ),
  model: z.string(),
  usage: z.object({ prompt_tokens: z.number().int(), total_tokens: z.number().int() }),
});
export type EmbeddingsResponse = z.infer<typeof EmbeddingsResponse>;

/** How the provider embeds. */
export interface EmbeddingsSettings {
  /** The vector length when a request does not ask for one. */
  dimensions: number;
  /**
   * Answer every request with {@link dimensions}, ignoring a request's `dimensions`, as a model
   * server with a fixed vector size does (lets a client's dimension check be tested).
   */
  fixedDimensions: boolean;
}

/** Little-endian float32 bytes in base64, as OpenAI's `encoding_format: base64`. */
export function toBase64(vector: ArrayLike<number>): string {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i += 1) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes.toString('base64');
}

/** The deterministic embeddings model behind `POST /v1/embeddings`, with its counters. */
export class EmbeddingsModel {
  private requests = 0;
  private vectors = 0;

  constructor(readonly settings: EmbeddingsSettings) {}

  /** Embeds a validated request's texts, in input order. */
  embed(request: EmbeddingsRequest): EmbeddingsResponse {
    const model = request.model ?? DEFAULT_EMBEDDINGS_MODEL;
    const dimensions = this.settings.fixedDimensions ? this.settings.dimensions : (request.dimensions ?? this.settings.dimensions);
    const texts = typeof request.input === 'string' ? [request.input] : request.input;
    const vectors = new HashEmbedder(model, dimensions).embedMany(texts);
    const tokens = texts.reduce((sum, text) => sum + estimateTokens(text), 0);
    this.requests += 1;
    this.vectors += vectors.length;
    return {
      object: 'list',
      data: vectors.map((vector, index) => ({
        object: 'embedding',
        index,
        embedding: request.encoding_format === 'base64' ? toBase64(vector) : vector,
      })),
      model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  }

  /** Counts a request answered by another model (the real one) with `vectors` vectors. */
  record(vectors: number): void {
    this.requests += 1;
    this.vectors += vectors;
  }

  /** Requests answered and vectors returned since start or the last reset. */
  counts(): { embeddingRequests: number; embeddingsCreated: number } {
    return { embeddingRequests: this.requests, embeddingsCreated: this.vectors };
  }

  clear(): void {
    this.requests = 0;
    this.vectors = 0;
  }
}
