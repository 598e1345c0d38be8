/**
 * The model's own process, started by `ModelProcess` (`model-process.ts`, which describes the
 * protocol) when the first request needs the model and ended when it has been idle for the
 * keep-alive: the tokenizer and one ONNX Runtime session of the sentence-embedding model turn texts
 * into unit vectors. A process, not a thread, because only a process's exit gives all of the model's
 * memory back to the system: after 2,000 post-sized texts on a worker thread, then the session
 * released and the thread ended, the process kept 85 MB (ONNX Runtime's arena on) to 180 MB (off)
 * more than before the load, in glibc's arenas; glibc settings that gave most of it back made the
 * model 4× slower. Plain JavaScript because it runs with no TypeScript loader.
 * Usage: `node model-process-child.mjs <model.onnx> <tokenizer.json> <threads>`, with an IPC channel.
 *
 * Each text runs as its own sequence (batch dimension 1, no padding). The int8 model quantizes its
 * activations per tensor (DynamicQuantizeLinear), so in a padded batch every text's vector would
 * depend on its neighbours (by up to 3e-2 here), and padded batches were slower on a CPU as well.
 */
import ort from 'onnxruntime-node';
import { SentenceTokenizer } from './sentence-tokenizer.mjs';

if (!process.send) {
  console.error('model-process-child.mjs runs as a child process with an IPC channel (see model-process.ts)');
  process.exit(2);
}
// The parent stopped the model, exited or was killed: nobody is left to answer.
process.on('disconnect', () => process.exit(0));

const [onnxPath, tokenizerPath, threads] = process.argv.slice(2);

/** @type {SentenceTokenizer} */
let tokenizer;
/** @type {import('onnxruntime-node').InferenceSession} */
let session;
/** @type {number} */
let dimensions;

/**
 * The mean of the token vectors (every token counts: a sequence has no padding), L2-normalised as
 * sentence-transformers' Normalize layer does (`x / max(‖x‖, 1e-12)`), written at `out[offset…]`.
 * @param {Float32Array} hidden `[1, tokens, dimensions]`
 * @param {number} tokens @param {Float64Array} out @param {number} offset
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

/** @param {readonly number[]} ids */
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
 * Embeds `texts`, one after the other.
 * @param {readonly string[]} texts
 * @returns {Promise<{ vectors: Float64Array, tokens: Int32Array, truncated: number }>} the vectors end to end, each text's tokens
 */
async function embed(texts) {
  const vectors = new Float64Array(texts.length * dimensions);
  const tokens = new Int32Array(texts.length);
  let truncated = 0;
  for (let i = 0; i < texts.length; i += 1) {
    const encoded = tokenizer.encode(texts[i]);
    tokens[i] = encoded.ids.length;
    if (encoded.truncated) truncated += 1;
    const output = await session.run(feedsOf(encoded.ids));
    poolInto(/** @type {Float32Array} */ (output[session.outputNames[0]].data), encoded.ids.length, vectors, i * dimensions);
    for (const tensor of Object.values(output)) tensor.dispose?.();
  }
  return { vectors, tokens, truncated };
}

try {
  tokenizer = await SentenceTokenizer.open(tokenizerPath);
  session = await ort.InferenceSession.create(onnxPath, {
    intraOpNumThreads: Number(threads),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // Basic optimisations only: ONNX Runtime's fused kernels (extended, all) change between its
    // versions, and this int8 model amplifies their float differences into vectors moved by up to
    // 2e-2 (ONNX Runtime 1.20 against 1.30); basic gives the same vectors as ONNX Runtime 1.20 on the
    // reference sentences, for ~10% more CPU per text. An index outlives a runtime upgrade.
    graphOptimizationLevel: 'basic',
    // ONNX Runtime's arena keeps the buffers of the longest text run so far and reuses them: without
    // it every run's buffers (MBs for a 256-token text) went through malloc, whose fragments grew the
    // process by ~70 MB over 2,000 post-sized texts, against ~28 MB with it, at the same speed and
    // with the same vectors. The arena goes with the process at unload, and it is what lets the
    // process run with a fixed malloc trim threshold (model-process.ts). No memory pattern: texts
    // vary in length.
    enableCpuMemArena: true,
    enableMemPattern: false,
  });
  const probe = await session.run(feedsOf([101, 102]));
  dimensions = probe[session.outputNames[0]].dims.at(-1);
  process.send({ kind: 'ready', dimensions });
} catch (error) {
  process.send({ kind: 'failed', error: error instanceof Error ? error.message : String(error) }, () => process.exit(1));
}

/** Requests run one at a time, in order (the parent sends one batch at a time anyway). */
let queue = Promise.resolve();
process.on('message', (/** @type {{ id: number, texts: string[] }} */ request) => {
  queue = queue.then(async () => {
    try {
      const started = performance.now();
      const { vectors, tokens, truncated } = await embed(request.texts);
      process.send({ kind: 'vectors', id: request.id, vectors, tokens, truncated, ms: performance.now() - started });
    } catch (error) {
      process.send({ kind: 'error', id: request.id, error: error instanceof Error ? error.message : String(error) });
    }
  });
});
