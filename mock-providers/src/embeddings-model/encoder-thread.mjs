/**
 * The worker-thread side of `SentenceEncoder` (`sentence-encoder.ts`, which describes the protocol):
 * owns one ONNX Runtime session of the sentence-embedding model and turns token ids into unit
 * vectors. Plain JavaScript because a worker thread does not inherit the service's TypeScript
 * loader. A run blocks its thread for milliseconds to a second, which is why it is not the main one.
 *
 * Each text runs as its own sequence (batch dimension 1, no padding). The int8 model quantizes its
 * activations per tensor (DynamicQuantizeLinear), so in a padded batch every text's vector would
 * depend on its neighbours (by up to 3e-2 here), and padded batches were slower on a CPU as well.
 */
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';

const port = parentPort;
if (!port) throw new Error('encoder-thread.mjs runs in a worker thread only');

/** @type {{ onnxPath: string, threads: number }} */
const { onnxPath, threads } = workerData;

/** @type {import('onnxruntime-node').InferenceSession} */
let session;
/** @type {number} */
let dimensions;

/**
 * The mean of the token vectors (every token counts: a sequence has no padding), L2-normalised as
 * sentence-transformers' Normalize layer does (`x / max(‖x‖, 1e-12)`), written at `out[offset…]`.
 * @param {Float32Array} hidden `[1, tokens, dimensions]`
 */
function poolInto(hidden, tokens, out, offset) {
  const sum = new Float64Array(dimensions);
  for (let t = 0; t < tokens; t += 1) {
    const row = t * dimensions;
    for (let d = 0; d < dimensions; d += 1) sum[d] += hidden[row + d];
  }
  let squares = 0;
  for (let d = 0; d < dimensions; d += 1) {
    sum[d] /= tokens;
    squares += sum[d] * sum[d];
  }
  const norm = Math.max(Math.sqrt(squares), 1e-12);
  for (let d = 0; d < dimensions; d += 1) out[offset + d] = sum[d] / norm;
}

/** @param {Int32Array} ids */
function feedsOf(ids) {
  const n = ids.length;
  const longs = new BigInt64Array(n);
  for (let i = 0; i < n; i += 1) longs[i] = BigInt(ids[i]);
  /** @type {Record<string, import('onnxruntime-node').Tensor>} */
  const feeds = {
    input_ids: new ort.Tensor('int64', longs, [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
  };
  if (session.inputNames.includes('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(n), [1, n]);
  return feeds;
}

/**
 * Embeds `lengths.length` sequences laid end to end in `ids`.
 * @param {Int32Array} ids @param {Int32Array} lengths
 * @returns {Promise<Float64Array>} the vectors, end to end
 */
async function embed(ids, lengths) {
  const vectors = new Float64Array(lengths.length * dimensions);
  let start = 0;
  for (let i = 0; i < lengths.length; i += 1) {
    const sequence = ids.subarray(start, start + lengths[i]);
    start += lengths[i];
    const output = await session.run(feedsOf(sequence));
    const hidden = output[session.outputNames[0]];
    poolInto(/** @type {Float32Array} */ (hidden.data), sequence.length, vectors, i * dimensions);
    for (const tensor of Object.values(output)) tensor.dispose?.();
  }
  return vectors;
}

try {
  session = await ort.InferenceSession.create(onnxPath, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // Basic optimisations only: ONNX Runtime's fused kernels (extended, all) change between its
    // versions, and this int8 model amplifies their float differences into vectors moved by up to
    // 2e-2 (ONNX Runtime 1.20 against 1.30); basic gives the same vectors as ONNX Runtime 1.20 on the
    // reference sentences, for ~10% more CPU per text. An index outlives a runtime upgrade.
    graphOptimizationLevel: 'basic',
    // No arena and no memory pattern: both keep the largest run's buffers for good (texts vary in
    // length), ~15–20 MB more resident for no measurable speed on this model.
    enableCpuMemArena: false,
    enableMemPattern: false,
  });
  const probe = await session.run(feedsOf(Int32Array.of(101, 102)));
  dimensions = probe[session.outputNames[0]].dims.at(-1);
  port.postMessage({ id: 0, ok: true, dimensions });
} catch (error) {
  port.postMessage({ id: 0, ok: false, error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}

port.on('message', async (request) => {
  try {
    const started = performance.now();
    const vectors = await embed(request.ids, request.lengths);
    port.postMessage({ id: request.id, ok: true, vectors, ms: performance.now() - started }, [vectors.buffer]);
  } catch (error) {
    port.postMessage({ id: request.id, ok: false, error: error instanceof Error ? error.message : String(error) });
  }
});
