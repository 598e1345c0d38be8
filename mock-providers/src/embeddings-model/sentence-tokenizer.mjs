/**
 * The model's tokenizer (BERT WordPiece: clean-up, lower-casing, accents stripped, CJK characters
 * split, `[CLS] … [SEP]`) read from its `tokenizer.json` by Hugging Face's own JavaScript
 * implementation. The file's own truncation (128) and padding are not applied: a text is cut to
 * {@link MODEL_MAX_TOKENS} tokens here, as sentence-transformers cuts it, and never padded.
 *
 * Plain JavaScript (typed by `sentence-tokenizer.d.mts`) because the model's process
 * (`model-process-child.mjs`) runs it with no TypeScript loader; the tests use it too.
 */
import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';

/**
 * Tokens one text is cut to, `[CLS]` and `[SEP]` included: the model's `max_seq_length` in
 * sentence-transformers (its position table allows 512; it was trained on 128 and tuned on 256).
 */
export const MODEL_MAX_TOKENS = 256;

export class SentenceTokenizer {
  /** @param {Tokenizer} tokenizer @param {number} sep */
  constructor(tokenizer, sep) {
    this.tokenizer = tokenizer;
    this.sep = sep;
  }

  /** Reads `tokenizer.json`. @param {string} file */
  static async open(file) {
    const tokenizer = new Tokenizer(JSON.parse(await readFile(file, 'utf8')), {});
    const sep = tokenizer.token_to_id('[SEP]');
    if (sep === undefined) throw new Error(`${file} has no [SEP] token: not a BERT tokenizer`);
    return new SentenceTokenizer(tokenizer, sep);
  }

  /**
   * The token ids of `text`, `[CLS]` first and `[SEP]` last, at most `maxTokens` (≥ 2) of them: a
   * longer text's end is cut off (`truncated`), as sentence-transformers does.
   * @param {string} text
   * @returns {{ ids: number[], truncated: boolean }}
   */
  encode(text, maxTokens = MODEL_MAX_TOKENS) {
    const ids = this.tokenizer.encode(text).ids;
    if (ids.length <= maxTokens) return { ids, truncated: false };
    const cut = ids.slice(0, maxTokens);
    cut[maxTokens - 1] = this.sep;
    return { ids: cut, truncated: true };
  }

  /** The word pieces of `text`, without `[CLS]` and `[SEP]` (for inspection and tests). @param {string} text */
  tokens(text) {
    return this.tokenizer.tokenize(text);
  }
}
