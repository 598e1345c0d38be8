/** Types of `sentence-tokenizer.mjs` (plain JavaScript, run by the model's process with no TypeScript loader). */

/** Tokens one text is cut to, `[CLS]` and `[SEP]` included (sentence-transformers' `max_seq_length`). */
export declare const MODEL_MAX_TOKENS: number;

/** The model's WordPiece tokenizer, read from its `tokenizer.json`; texts are cut to {@link MODEL_MAX_TOKENS}. */
export declare class SentenceTokenizer {
  private constructor();
  /** Reads `tokenizer.json`. */
  static open(file: string): Promise<SentenceTokenizer>;
  /** The token ids of `text`, `[CLS]` first and `[SEP]` last, at most `maxTokens` (≥ 2): a longer text's end is cut off (`truncated`). */
  encode(text: string, maxTokens?: number): { ids: number[]; truncated: boolean };
  /** The word pieces of `text`, without `[CLS]` and `[SEP]`. */
  tokens(text: string): string[];
}
