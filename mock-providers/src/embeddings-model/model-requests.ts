import { toBase64, type EmbeddingsRequest, type EmbeddingsResponse } from '../embeddings.ts';
import type { LocalModel } from './local-model.ts';
import { MODEL_DIMENSIONS, MODEL_ID, namesTheModel } from './model-artifact.ts';
import type { SentenceModel } from './sentence-model.ts';

/** Which model answers a request, or why none can. */
export type ModelChoice =
  | { kind: 'mock' }
  | { kind: 'model'; model: SentenceModel }
  | { kind: 'unavailable'; status: 404 | 503; code: 'model_not_found' | 'model_loading'; message: string; retryAfterSeconds?: number };

/**
 * The real model answers a request naming it (or an alias), and a request naming no model unless it
 * is off; every other name is the deterministic mock's (which seeds its hashing with it), so the
 * mock's clients are unaffected by the model. A request for the model while its files are checked
 * at start gets 503 `model_loading`; when it is off (mock mode, or not available), 404
 * `model_not_found`. Once the files are checked the model answers, loaded or not: an unloaded model
 * is loaded by the request (see {@link SentenceModel}).
 */
export function chooseModel(requested: string | undefined, local: LocalModel | undefined): ModelChoice {
  const state = local?.state ?? { kind: 'off' as const, reason: 'this provider runs the deterministic mock only' };
  const wantsModel = requested === undefined ? state.kind !== 'off' : namesTheModel(requested);
  if (!wantsModel) return { kind: 'mock' };
  if (state.kind === 'available') return { kind: 'model', model: state.model };
  if (state.kind === 'checking') {
    return { kind: 'unavailable', status: 503, code: 'model_loading', message: `The model '${MODEL_ID}' is being checked (or fetched); try again shortly.`, retryAfterSeconds: 1 };
  }
  return { kind: 'unavailable', status: 404, code: 'model_not_found', message: `The model '${MODEL_ID}' is not served here: ${state.reason}` };
}

/** A request for the model asked for another vector length than its 384 (400 `unsupported_dimensions`). */
export function dimensionsProblem(request: EmbeddingsRequest): string | undefined {
  if (request.dimensions === undefined || request.dimensions === MODEL_DIMENSIONS) return undefined;
  return `The model '${MODEL_ID}' gives ${MODEL_DIMENSIONS}-dimensional vectors only; ${request.dimensions} was asked for.`;
}

/** Rounds as the mock does (8 decimals): plenty for a float32 model, and a third of the JSON. */
const ROUNDING = 1e8;

/** Embeds a validated request's texts with the real model, in OpenAI's shape (`usage` counts the model's own tokens). */
export async function embedWithModel(model: SentenceModel, request: EmbeddingsRequest, options: { signal?: AbortSignal } = {}): Promise<EmbeddingsResponse> {
  const texts = typeof request.input === 'string' ? [request.input] : request.input;
  const { vectors, tokens } = await model.embed(texts, options);
  return {
    object: 'list',
    data: vectors.map((vector, index) => ({
      object: 'embedding',
      index,
      embedding: request.encoding_format === 'base64' ? toBase64(vector) : Array.from(vector, (value) => Math.round(value * ROUNDING) / ROUNDING),
    })),
    model: MODEL_ID,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}
